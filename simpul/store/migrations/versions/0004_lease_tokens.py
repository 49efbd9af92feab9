"""lease tokens: an outcome is recorded only by the holder of the delivery's current lease

Revision ID: 0004
Revises: 0003

Several engine processes share one store. A worker that stalls past its lease loses the
delivery to another process; when it wakes up, its late outcome must not overwrite the new
holder's. Each claim writes a fresh random `lease_token`; recording an outcome (and renewing a
lease) matches the token, so only the current holder's write lands. Nullable: plain ADD COLUMN.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('deliveries', sa.Column('lease_token', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('lease_token')
