"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=250), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_at', ['at'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('received_at', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sending_application', sa.String(length=180), nullable=False),
    sa.Column('sending_facility', sa.String(length=180), nullable=False),
    sa.Column('receiving_application', sa.String(length=180), nullable=False),
    sa.Column('receiving_facility', sa.String(length=180), nullable=False),
    sa.Column('message_type', sa.String(length=32), nullable=False),
    sa.Column('control_id', sa.String(length=199), nullable=False),
    sa.Column('version_id', sa.String(length=16), nullable=False),
    sa.Column('charset', sa.String(length=32), nullable=False),
    sa.Column('content_hash', sa.String(length=32), nullable=False),
    sa.Column('patient_id', sa.String(length=250), nullable=False),
    sa.Column('visit_number', sa.String(length=250), nullable=False),
    sa.Column('placer_number', sa.String(length=250), nullable=False),
    sa.Column('filler_number', sa.String(length=250), nullable=False),
    sa.Column('accession_number', sa.String(length=250), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('ack', sa.LargeBinary(), nullable=True),
    sa.Column('ack_code', sa.String(length=2), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_accession_number', ['accession_number'], unique=False)
        batch_op.create_index('ix_messages_control_id', ['control_id'], unique=False)
        batch_op.create_index('ix_messages_dedup', ['sending_application', 'sending_facility', 'control_id'], unique=False)
        batch_op.create_index('ix_messages_filler_number', ['filler_number'], unique=False)
        batch_op.create_index('ix_messages_message_type', ['message_type'], unique=False)
        batch_op.create_index('ix_messages_patient_id', ['patient_id'], unique=False)
        batch_op.create_index('ix_messages_placer_number', ['placer_number'], unique=False)
        batch_op.create_index('ix_messages_received_at', ['received_at'], unique=False)
        batch_op.create_index('ix_messages_status', ['status', 'id'], unique=False)
        batch_op.create_index('ix_messages_visit_number', ['visit_number'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=120), nullable=False),
    sa.Column('destination', sa.String(length=120), nullable=False),
    sa.Column('order_key', sa.String(length=250), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('lease_until', sa.Float(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('delivered_at', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_response', sa.Text(), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_message', ['message_id'], unique=False)
        batch_op.create_index('ix_deliveries_order', ['channel', 'destination', 'order_key', 'status'], unique=False)
        batch_op.create_index('ix_deliveries_queue', ['channel', 'destination', 'status', 'id'], unique=False)

    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=120), nullable=False),
    sa.Column('destination', sa.String(length=120), nullable=False),
    sa.Column('stage', sa.String(length=120), nullable=False),
    sa.Column('error_class', sa.String(length=120), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('message_type', sa.String(length=32), nullable=False),
    sa.Column('control_id', sa.String(length=199), nullable=False),
    sa.Column('patient_id', sa.String(length=250), nullable=False),
    sa.Column('visit_number', sa.String(length=250), nullable=False),
    sa.Column('accession_number', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index('ix_dead_letters_channel', ['channel', 'destination', 'status'], unique=False)
        batch_op.create_index('ix_dead_letters_control_id', ['control_id'], unique=False)
        batch_op.create_index('ix_dead_letters_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_dead_letters_patient_id', ['patient_id'], unique=False)

    op.create_table('delivery_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('finished_at', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error_class', sa.String(length=120), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_attempts_delivery', ['delivery_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_attempts_delivery')

    op.drop_table('delivery_attempts')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_patient_id')
        batch_op.drop_index('ix_dead_letters_created_at')
        batch_op.drop_index('ix_dead_letters_control_id')
        batch_op.drop_index('ix_dead_letters_channel')

    op.drop_table('dead_letters')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_queue')
        batch_op.drop_index('ix_deliveries_order')
        batch_op.drop_index('ix_deliveries_message')

    op.drop_table('deliveries')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_visit_number')
        batch_op.drop_index('ix_messages_status')
        batch_op.drop_index('ix_messages_received_at')
        batch_op.drop_index('ix_messages_placer_number')
        batch_op.drop_index('ix_messages_patient_id')
        batch_op.drop_index('ix_messages_message_type')
        batch_op.drop_index('ix_messages_filler_number')
        batch_op.drop_index('ix_messages_dedup')
        batch_op.drop_index('ix_messages_control_id')
        batch_op.drop_index('ix_messages_accession_number')

    op.drop_table('messages')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_at')

    op.drop_table('audit_events')
