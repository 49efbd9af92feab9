"""billing: accounts per encounter, their transitions, charges, invoices, reconciliation items

Revision ID: 0008_billing
Revises: 0007

The encounter-to-cash tables (simpul/billing). Every row a message causes carries a unique
source_key, so a replayed message stream charges nothing twice.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_billing'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'billing_accounts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('visit_number', sa.String(250), nullable=False),
        sa.Column('patient_id', sa.String(250), nullable=False),
        sa.Column('payer_type', sa.String(16), nullable=False),
        sa.Column('payer_id', sa.String(120), nullable=False),
        sa.Column('payer_ref', sa.String(120), nullable=False),
        sa.Column('room_class', sa.String(40), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('admitted_at', sa.Float(), nullable=True),
        sa.Column('discharged_at', sa.Float(), nullable=True),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('visit_number'),
    )
    op.create_table(
        'billing_account_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('transition', sa.String(16), nullable=False),
        sa.Column('event_code', sa.String(32), nullable=False),
        sa.Column('room_class', sa.String(40), nullable=False),
        sa.Column('occurred_at', sa.Float(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('source_key', sa.String(250), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source_key'),
    )
    op.create_index('ix_billing_account_events_account', 'billing_account_events', ['account_id', 'id'])
    op.create_table(
        'billing_invoices',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('invoice_no', sa.String(120), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('idempotency_key', sa.String(160), nullable=False),
        sa.Column('status', sa.String(24), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.Column('claimed_amount', sa.BigInteger(), nullable=True),
        sa.Column('posted_amount', sa.BigInteger(), nullable=True),
        sa.Column('paid_amount', sa.BigInteger(), nullable=False),
        sa.Column('approved_amount', sa.BigInteger(), nullable=True),
        sa.Column('erp_invoice_no', sa.String(120), nullable=False),
        sa.Column('erp_status', sa.String(32), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('invoice_no'),
        sa.UniqueConstraint('idempotency_key'),
    )
    op.create_index('ix_billing_invoices_updated', 'billing_invoices', ['updated_at', 'id'])
    op.create_table(
        'billing_charges',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('source_key', sa.String(250), nullable=False),
        sa.Column('origin', sa.String(16), nullable=False),
        sa.Column('service_code', sa.String(80), nullable=False),
        sa.Column('description', sa.String(250), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('unit_price', sa.BigInteger(), nullable=True),
        sa.Column('amount', sa.BigInteger(), nullable=True),
        sa.Column('tarif_bucket', sa.String(40), nullable=False),
        sa.Column('room_class', sa.String(40), nullable=False),
        sa.Column('service_date', sa.String(10), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('invoice_id', sa.Integer(), nullable=True),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id']),
        sa.ForeignKeyConstraint(['invoice_id'], ['billing_invoices.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source_key'),
    )
    op.create_index('ix_billing_charges_account', 'billing_charges', ['account_id', 'status'])
    op.create_index('ix_billing_charges_status', 'billing_charges', ['status', 'id'])
    op.create_table(
        'billing_reconciliation_items',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('invoice_no', sa.String(120), nullable=False),
        sa.Column('erp_invoice_no', sa.String(120), nullable=False),
        sa.Column('expected', sa.BigInteger(), nullable=True),
        sa.Column('actual', sa.BigInteger(), nullable=True),
        sa.Column('payer_type', sa.String(16), nullable=False),
        sa.Column('detail', sa.String(250), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('opened_at', sa.Float(), nullable=False),
        sa.Column('resolved_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'invoice_no', 'erp_invoice_no', name='uq_billing_reconciliation_item'),
    )
    op.create_index('ix_billing_reconciliation_open', 'billing_reconciliation_items', ['status', 'id'])
    op.create_table(
        'billing_state',
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('value', sa.String(250), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('billing_state')
    op.drop_index('ix_billing_reconciliation_open', table_name='billing_reconciliation_items')
    op.drop_table('billing_reconciliation_items')
    op.drop_index('ix_billing_charges_status', table_name='billing_charges')
    op.drop_index('ix_billing_charges_account', table_name='billing_charges')
    op.drop_table('billing_charges')
    op.drop_index('ix_billing_invoices_updated', table_name='billing_invoices')
    op.drop_table('billing_invoices')
    op.drop_index('ix_billing_account_events_account', table_name='billing_account_events')
    op.drop_table('billing_account_events')
    op.drop_table('billing_accounts')
