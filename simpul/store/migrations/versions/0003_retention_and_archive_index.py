"""retention: archive index, restored messages, archive key ids

Revision ID: 0003
Revises: 0002

Adds what retention needs (dead_letters/retention.py): `archive_entries`, the index that finds
an archived message's file by control id, patient id or time after the message left the hot
store; `messages.restored_at`, so a restored message gets a fresh retention period; and the
key id and size of each archive file. Every added column is nullable (plain ADD COLUMN on SQLite).
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('archive_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('archive_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=120), nullable=False),
    sa.Column('received_at', sa.Float(), nullable=False),
    sa.Column('message_type', sa.String(length=32), nullable=False),
    sa.Column('control_id', sa.String(length=199), nullable=False),
    sa.Column('patient_id', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['archive_id'], ['archives.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_archive_entries_archive', 'archive_entries', ['archive_id'], unique=False)
    op.create_index('ix_archive_entries_control_id', 'archive_entries', ['control_id'], unique=False)
    op.create_index('ix_archive_entries_patient_id', 'archive_entries', ['patient_id'], unique=False)
    op.create_index('ix_archive_entries_received_at', 'archive_entries', ['received_at'], unique=False)
    op.add_column('archives', sa.Column('key_id', sa.String(length=64), nullable=True))
    op.add_column('archives', sa.Column('bytes', sa.Integer(), nullable=True))
    op.add_column('messages', sa.Column('restored_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('restored_at')
    with op.batch_alter_table('archives', schema=None) as batch_op:
        batch_op.drop_column('bytes')
        batch_op.drop_column('key_id')
    op.drop_index('ix_archive_entries_received_at', table_name='archive_entries')
    op.drop_index('ix_archive_entries_patient_id', table_name='archive_entries')
    op.drop_index('ix_archive_entries_control_id', table_name='archive_entries')
    op.drop_index('ix_archive_entries_archive', table_name='archive_entries')
    op.drop_table('archive_entries')
