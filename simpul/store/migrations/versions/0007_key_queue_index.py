"""deliveries: index the waiting deliveries of each key in FIFO position

Revision ID: 0007
Revises: 0006_events

The claim finds the keys that have pending deliveries by skipping from key to key in this index,
then takes a key's run of waiting deliveries in FIFO position (coalesce(ordered_as, id)) from
it, so its cost depends on the number of keys looked at, not on how many deliveries wait. It
replaces ix_deliveries_order (channel, destination, order_key, status), which it covers.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006_events'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_order')
    op.create_index('ix_deliveries_key_queue', 'deliveries',
                    ['channel', 'destination', 'status', 'order_key', sa.text('coalesce(ordered_as, id)'), 'id'])


def downgrade() -> None:
    op.drop_index('ix_deliveries_key_queue', table_name='deliveries')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_order', ['channel', 'destination', 'order_key', 'status'], unique=False)
