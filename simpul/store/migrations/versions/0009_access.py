"""access: users, API tokens, sessions, login failures, WebAuthn credentials; the audit hash chain

Revision ID: 0009_access
Revises: 0008_orders

The console and the API authenticate people (users with argon2 password hashes, sessions,
TOTP/WebAuthn second factors) and machines (API tokens, stored as a hash). Audit events gain
the role and client address of whoever acted, and a hash chain: events written before this
revision are chained here, in id order, with the same hash the engine uses from now on.
"""
from alembic import op
import sqlalchemy as sa

from simpul.store.audit_chain import CHAINED_FIELDS, GENESIS, event_hash


revision = '0009_access'
down_revision = '0008_orders'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=32), server_default='', nullable=False))
        batch_op.add_column(sa.Column('client', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), server_default='', nullable=False))
    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('totp_last_step', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('disabled_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_id', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.Column('last_used_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_id')
    )
    op.create_table('sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.Column('last_seen_at', sa.Float(), nullable=False),
    sa.Column('second_factor', sa.String(length=16), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('challenge', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sessions_user', 'sessions', ['user_id'], unique=False)
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('user_name', sa.String(length=120), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_login_failures_user', 'login_failures', ['user_name', 'at'], unique=False)
    op.create_index('ix_login_failures_client', 'login_failures', ['client', 'at'], unique=False)
    op.create_table('webauthn_credentials',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('credential_id', sa.String(length=512), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('sign_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('credential_id')
    )
    op.create_index('ix_webauthn_credentials_user', 'webauthn_credentials', ['user_id'], unique=False)
    _chain_existing_events()
    # The defaults only filled the rows that existed; new rows always name these values.
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        for name in ('role', 'client', 'prev_hash', 'hash'):
            batch_op.alter_column(name, server_default=None)


def _chain_existing_events() -> None:
    """Chain the events written before this revision, oldest first."""
    connection = op.get_bind()
    table = sa.table('audit_events', sa.column('id', sa.Integer), *(sa.column(name) for name in CHAINED_FIELDS),
                     sa.column('prev_hash', sa.String), sa.column('hash', sa.String))
    prev = GENESIS
    rows = connection.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    for row in rows:
        own = event_hash(dict(row), prev)
        connection.execute(table.update().where(table.c.id == row['id']).values(prev_hash=prev, hash=own))
        prev = own


def downgrade() -> None:
    op.drop_index('ix_webauthn_credentials_user', table_name='webauthn_credentials')
    op.drop_table('webauthn_credentials')
    op.drop_index('ix_login_failures_client', table_name='login_failures')
    op.drop_index('ix_login_failures_user', table_name='login_failures')
    op.drop_table('login_failures')
    op.drop_index('ix_sessions_user', table_name='sessions')
    op.drop_table('sessions')
    op.drop_table('api_tokens')
    op.drop_table('users')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('client')
        batch_op.drop_column('role')
