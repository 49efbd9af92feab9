"""dead letters, replay links, message edits, destination controls, archives

Revision ID: 0002
Revises: 0001

Adds what on-call work needs (dead_letters/): edited bytes kept beside the original, replay
rows that link a new delivery to its dead letter and original delivery, a persisted pause per
destination (survives restarts; the worker reads it when it claims), and the archive index.
Every added column is nullable, so ADD COLUMN works on SQLite without a table rebuild.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('archives',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('channel', sa.String(length=120), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('received_from', sa.Float(), nullable=True),
    sa.Column('received_until', sa.Float(), nullable=True),
    sa.Column('encrypted', sa.Integer(), nullable=False),
    sa.Column('restored_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('destination_controls',
    sa.Column('channel', sa.String(length=120), nullable=False),
    sa.Column('destination', sa.String(length=120), nullable=False),
    sa.Column('paused_at', sa.Float(), nullable=True),
    sa.Column('paused_by', sa.String(length=120), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'destination')
    )
    op.create_table('dead_letter_edits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dead_letter_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['dead_letter_id'], ['dead_letters.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_dead_letter_edits_dead_letter', 'dead_letter_edits', ['dead_letter_id'], unique=False)
    op.create_table('replays',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('audit_event_id', sa.Integer(), nullable=False),
    sa.Column('dead_letter_id', sa.Integer(), nullable=False),
    sa.Column('original_delivery_id', sa.Integer(), nullable=True),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('edit_id', sa.Integer(), nullable=True),
    sa.Column('destination', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['audit_event_id'], ['audit_events.id'], ),
    sa.ForeignKeyConstraint(['dead_letter_id'], ['dead_letters.id'], ),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ),
    sa.ForeignKeyConstraint(['edit_id'], ['dead_letter_edits.id'], ),
    sa.ForeignKeyConstraint(['original_delivery_id'], ['deliveries.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_replays_dead_letter', 'replays', ['dead_letter_id'], unique=False)
    op.create_index('ix_replays_delivery', 'replays', ['delivery_id'], unique=False)
    op.add_column('dead_letters', sa.Column('resolved_at', sa.Float(), nullable=True))
    op.add_column('dead_letters', sa.Column('resolved_by', sa.String(length=120), nullable=True))
    op.add_column('dead_letters', sa.Column('resolution', sa.Text(), nullable=True))
    op.add_column('deliveries', sa.Column('replay_of', sa.Integer(), nullable=True))
    op.add_column('deliveries', sa.Column('ordered_as', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('ordered_as')
        batch_op.drop_column('replay_of')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_column('resolution')
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('resolved_at')
    op.drop_index('ix_replays_delivery', table_name='replays')
    op.drop_index('ix_replays_dead_letter', table_name='replays')
    op.drop_table('replays')
    op.drop_index('ix_dead_letter_edits_dead_letter', table_name='dead_letter_edits')
    op.drop_table('dead_letter_edits')
    op.drop_table('destination_controls')
    op.drop_table('archives')
