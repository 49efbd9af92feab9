"""orders: the order-to-result loop (orders and their timeline)

Revision ID: 0008_orders
Revises: 0007

Each order sent to a LIS or RIS, and each result that named no known order, gets a row; every
step (placed, accepted, specimen collected, preliminary, final, corrected, ...) an event row.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_orders'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('orders',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=120), nullable=False),
    sa.Column('placer_number', sa.String(length=250), nullable=False),
    sa.Column('filler_number', sa.String(length=250), nullable=False),
    sa.Column('accession_number', sa.String(length=250), nullable=False),
    sa.Column('patient_id', sa.String(length=250), nullable=False),
    sa.Column('code', sa.String(length=250), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('unknown', sa.Integer(), nullable=False),
    sa.Column('placed_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('due_at', sa.Float(), nullable=True),
    sa.Column('final_at', sa.Float(), nullable=True),
    sa.Column('overdue_at', sa.Float(), nullable=True),
    sa.Column('study_found_at', sa.Float(), nullable=True),
    sa.Column('study_alerted_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_orders_placer', 'orders', ['placer_number'], unique=False)
    op.create_index('ix_orders_filler', 'orders', ['filler_number'], unique=False)
    op.create_index('ix_orders_accession', 'orders', ['accession_number'], unique=False)
    op.create_index('ix_orders_due', 'orders', ['final_at', 'due_at'], unique=False)
    op.create_table('order_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('step', sa.String(length=24), nullable=False),
    sa.Column('detail', sa.String(length=250), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_order_events_order', 'order_events', ['order_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_order_events_order', table_name='order_events')
    op.drop_table('order_events')
    op.drop_index('ix_orders_due', table_name='orders')
    op.drop_index('ix_orders_accession', table_name='orders')
    op.drop_index('ix_orders_filler', table_name='orders')
    op.drop_index('ix_orders_placer', table_name='orders')
    op.drop_table('orders')
