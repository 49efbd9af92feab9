"""national_submissions, national_identities: BPJS VClaim SEPs, E-Klaim claims, SATUSEHAT resources

Revision ID: 0011_bpjs
Revises: 0010_billing

What each national service holds for a visit (SEP number, INA-CBG code and tariff, SATUSEHAT ids),
the refusals with the service's own message, and the IHS numbers looked up by NIK; and the
INA-CBG code on the invoice whose claimed_amount the claim's tariff fills.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_bpjs'
down_revision = '0010_billing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'national_submissions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('service', sa.String(20), nullable=False),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('visit', sa.String(120), nullable=False),
        sa.Column('local_ref', sa.String(200), nullable=False),
        sa.Column('remote_id', sa.String(120), nullable=True),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('channel', sa.String(120), nullable=False),
        sa.Column('control_id', sa.String(200), nullable=False),
        sa.Column('supersedes', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
    )
    op.create_index('ix_national_submissions_ref', 'national_submissions', ['service', 'local_ref', 'id'])
    op.create_index('ix_national_submissions_visit', 'national_submissions', ['service', 'visit'])
    op.create_table(
        'national_identities',
        sa.Column('service', sa.String(20), primary_key=True),
        sa.Column('kind', sa.String(40), primary_key=True),
        sa.Column('local_key', sa.String(200), primary_key=True),
        sa.Column('remote_id', sa.String(120), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
    )
    with op.batch_alter_table('billing_invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inacbg_code', sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('billing_invoices', schema=None) as batch_op:
        batch_op.drop_column('inacbg_code')
    op.drop_table('national_identities')
    op.drop_index('ix_national_submissions_visit', table_name='national_submissions')
    op.drop_index('ix_national_submissions_ref', table_name='national_submissions')
    op.drop_table('national_submissions')
