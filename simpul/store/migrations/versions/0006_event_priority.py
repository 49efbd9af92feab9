"""event priority: messages.priority, so a priority event is routed ahead of a backlog

Revision ID: 0006_events
Revises: 0005

Business events written by the engine itself (engine/events.py) may be urgent (a critical lab
result). The processor takes `received` messages with priority 1 first.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_events'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (with its default) on both databases: no copy of a large messages table.
    op.add_column('messages', sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_messages_priority', 'messages', ['status', 'priority', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_messages_priority', table_name='messages')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('priority')
