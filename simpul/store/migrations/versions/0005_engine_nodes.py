"""engine nodes: each engine process publishes its channel set and sources

Revision ID: 0005
Revises: 0004

With several processes on one store, a message is routed only by a process whose channels
listen on its source. `engine_nodes` says which process knows which sources and the hash of
its channel set, so /healthz can report config drift and messages no live process can route.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('engine_nodes',
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('channel_set_hash', sa.String(length=64), nullable=False),
    sa.Column('sources', sa.Text(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('heartbeat_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('owner')
    )


def downgrade() -> None:
    op.drop_table('engine_nodes')
