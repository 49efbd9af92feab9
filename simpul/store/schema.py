"""Tables of the store (SQLAlchemy Core).

Core, not the ORM: the ingest path writes thousands of rows a second in group commits and
the ORM's unit of work would cost more than the fsync. Every schema change needs an alembic
revision in store/migrations/versions; tests/store/test_migrations.py checks they agree.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text,
    UniqueConstraint, func,
)

metadata = MetaData()

messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),          # unix seconds, UTC
    Column("source", String(64), nullable=False),           # e.g. "mllp:2575", "http"
    # received -> routed | unrouted ; rejected = stored for staff to see, never processed
    Column("status", String(16), nullable=False),
    Column("sending_application", String(180), nullable=False, default=""),
    Column("sending_facility", String(180), nullable=False, default=""),
    Column("receiving_application", String(180), nullable=False, default=""),
    Column("receiving_facility", String(180), nullable=False, default=""),
    Column("message_type", String(32), nullable=False, default=""),
    Column("control_id", String(199), nullable=False, default=""),
    Column("version_id", String(16), nullable=False, default=""),
    Column("charset", String(32), nullable=False, default=""),
    Column("content_hash", String(32), nullable=False, default=""),
    Column("patient_id", String(250), nullable=False, default=""),
    Column("visit_number", String(250), nullable=False, default=""),
    Column("placer_number", String(250), nullable=False, default=""),
    Column("filler_number", String(250), nullable=False, default=""),
    Column("accession_number", String(250), nullable=False, default=""),
    Column("raw", LargeBinary, nullable=False),              # byte-exact as received
    Column("ack", LargeBinary),                              # the ACK we sent, replayed for duplicates
    Column("ack_code", String(2), nullable=False, default=""),
    Column("error", Text),
    Column("duplicates", Integer, nullable=False, default=0),
)
Index("ix_messages_dedup", messages.c.sending_application, messages.c.sending_facility,
      messages.c.control_id)
Index("ix_messages_status", messages.c.status, messages.c.id)
Index("ix_messages_received_at", messages.c.received_at)
Index("ix_messages_patient_id", messages.c.patient_id)
Index("ix_messages_visit_number", messages.c.visit_number)
Index("ix_messages_placer_number", messages.c.placer_number)
Index("ix_messages_filler_number", messages.c.filler_number)
Index("ix_messages_accession_number", messages.c.accession_number)
Index("ix_messages_control_id", messages.c.control_id)
Index("ix_messages_message_type", messages.c.message_type)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False),
    Column("channel", String(120), nullable=False),
    Column("destination", String(120), nullable=False),       # the destination's label
    Column("order_key", String(250), nullable=False, default=""),
    # pending -> in_flight -> delivered | dead ; in_flight with an expired lease is pending again
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("lease_owner", String(64)),
    Column("delivered_at", Float),
    Column("last_error", Text),
    Column("last_response", Text),
    Column("payload", LargeBinary, nullable=False),
    Column("content_type", String(64), nullable=False),
)
# The claim of an unordered destination walks its pending deliveries in id order (and finds
# expired leases among in_flight ones); ix_deliveries_key_queue is below, after `ordered_as`.
Index("ix_deliveries_queue", deliveries.c.channel, deliveries.c.destination, deliveries.c.status,
      deliveries.c.id)
Index("ix_deliveries_message", deliveries.c.message_id)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("outcome", String(16), nullable=False),           # delivered | retry | failed
    Column("error_class", String(120)),
    Column("error", Text),
    Column("response", Text),
)
Index("ix_delivery_attempts_delivery", delivery_attempts.c.delivery_id)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False),
    Column("delivery_id", Integer, ForeignKey("deliveries.id")),
    Column("channel", String(120), nullable=False),
    Column("destination", String(120), nullable=False, default=""),
    Column("stage", String(120), nullable=False),              # the label of the stage that failed
    Column("error_class", String(120), nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False, default="open"),   # open | replayed | discarded
    Column("raw", LargeBinary, nullable=False),                # the original bytes, kept with the entry
    Column("payload", LargeBinary),                            # the mapped output, when mapping succeeded
    Column("message_type", String(32), nullable=False, default=""),
    Column("control_id", String(199), nullable=False, default=""),
    Column("patient_id", String(250), nullable=False, default=""),
    Column("visit_number", String(250), nullable=False, default=""),
    Column("accession_number", String(250), nullable=False, default=""),
)
Index("ix_dead_letters_channel", dead_letters.c.channel, dead_letters.c.destination, dead_letters.c.status)
Index("ix_dead_letters_patient_id", dead_letters.c.patient_id)
Index("ix_dead_letters_control_id", dead_letters.c.control_id)
Index("ix_dead_letters_created_at", dead_letters.c.created_at)

audit_events = Table(
    "audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(250), nullable=False, default=""),
    Column("reason", Text),
    Column("detail", Text),                                   # JSON
)
Index("ix_audit_events_at", audit_events.c.at)

# ---- dead letters, replay and delivery control (revision 0002; owned by dead_letters/) ---------

# A replay is a new delivery row: `replay_of` names the first delivery of the chain (its id is the
# idempotency key connectors see), `ordered_as` lets a replay of a held (blocking) delivery take
# the FIFO place of the one it replaces.
deliveries.append_column(Column("replay_of", Integer, nullable=True))
deliveries.append_column(Column("ordered_as", Integer, nullable=True))

# FIFO position of a delivery within its key: a replay of a held delivery takes the place of the
# one it replaces, every other delivery is in id order.
DELIVERY_POSITION = func.coalesce(deliveries.c.ordered_as, deliveries.c.id)

# The claim of an ordered destination skips from key to key among its pending deliveries and
# reads a key's waiting run in FIFO position; the FIFO check seeks a key's in_flight and held
# rows before a position. Every step is an index seek, so a claim costs the same with ten
# deliveries waiting or a million, for one key or many.
Index("ix_deliveries_key_queue", deliveries.c.channel, deliveries.c.destination, deliveries.c.status,
      deliveries.c.order_key, DELIVERY_POSITION, deliveries.c.id)

# Who closed a dead letter (replayed or discarded), when and why; the audit trail has the same.
dead_letters.append_column(Column("resolved_at", Float, nullable=True))
dead_letters.append_column(Column("resolved_by", String(120), nullable=True))
dead_letters.append_column(Column("resolution", Text, nullable=True))

dead_letter_edits = Table(
    "dead_letter_edits", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dead_letter_id", Integer, ForeignKey("dead_letters.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),                # the edited HL7v2 bytes; the original stays
    Column("payload", LargeBinary),                            # the edited bytes re-mapped, when mapped
    Column("content_type", String(64), nullable=False, default=""),
)
Index("ix_dead_letter_edits_dead_letter", dead_letter_edits.c.dead_letter_id)

replays = Table(
    "replays", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("audit_event_id", Integer, ForeignKey("audit_events.id"), nullable=False),
    Column("dead_letter_id", Integer, ForeignKey("dead_letters.id"), nullable=False),
    Column("original_delivery_id", Integer, ForeignKey("deliveries.id")),
    Column("delivery_id", Integer, ForeignKey("deliveries.id"), nullable=False),
    Column("edit_id", Integer, ForeignKey("dead_letter_edits.id")),
    Column("destination", String(120), nullable=False),
)
Index("ix_replays_dead_letter", replays.c.dead_letter_id)
Index("ix_replays_delivery", replays.c.delivery_id)

destination_controls = Table(
    "destination_controls", metadata,
    Column("channel", String(120), primary_key=True),
    Column("destination", String(120), primary_key=True),
    Column("paused_at", Float),                                 # NULL = flowing
    Column("paused_by", String(120)),
    Column("reason", Text),
    Column("updated_at", Float, nullable=False),
)

archives = Table(
    "archives", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("channel", String(120), nullable=False, default=""),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("messages", Integer, nullable=False),
    Column("received_from", Float),
    Column("received_until", Float),
    Column("encrypted", Integer, nullable=False, default=0),
    Column("restored_at", Float),
)

# ---- retention and archives (revision 0003; owned by dead_letters/retention.py) ----------------

# Set when a message is brought back from an archive: retention counts its age from here, so a
# restored message stays in the hot store for the channel's `content` period before it is
# archived again.
messages.append_column(Column("restored_at", Float, nullable=True))

# The key id of an encrypted archive (the file header says the same); NULL = not encrypted.
archives.append_column(Column("key_id", String(64), nullable=True))
archives.append_column(Column("bytes", Integer, nullable=True))

# The index of archived messages: enough to find the file that holds a message by control id,
# patient id or time once the message left the hot store. Removed after the channel's
# `retention.metadata`; the archive files keep everything.
archive_entries = Table(
    "archive_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("archive_id", Integer, ForeignKey("archives.id"), nullable=False),
    Column("message_id", Integer, nullable=False),              # the id it had in the hot store
    Column("channel", String(120), nullable=False, default=""),
    Column("received_at", Float, nullable=False),
    Column("message_type", String(32), nullable=False, default=""),
    Column("control_id", String(199), nullable=False, default=""),
    Column("patient_id", String(250), nullable=False, default=""),
)
Index("ix_archive_entries_archive", archive_entries.c.archive_id)
Index("ix_archive_entries_control_id", archive_entries.c.control_id)
Index("ix_archive_entries_patient_id", archive_entries.c.patient_id)
Index("ix_archive_entries_received_at", archive_entries.c.received_at)

# ---- several engine processes on one store (revision 0004; owned by engine/delivery.py) ---------

# A fresh random token per claim: an outcome or a lease renewal lands only if the row still carries
# the token its writer claimed it with, so a worker whose lease was taken over cannot overwrite the
# new holder's result.
deliveries.append_column(Column("lease_token", String(32), nullable=True))

# Every running engine process, as it last reported itself (revision 0005; owned by
# engine/nodes.py). A process routes only messages from sources its channels listen on, so the
# store must show which process knows which source, and whether the processes run the same
# channel set (config drift). A row whose heartbeat is old belongs to a process that died.
engine_nodes = Table(
    "engine_nodes", metadata,
    Column("owner", String(120), primary_key=True),           # host:pid, or settings.engine_id
    Column("channel_set_hash", String(64), nullable=False),
    Column("sources", Text, nullable=False),                  # JSON list of source keys
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

# ---- orders: the order-to-result loop with the LIS and RIS (engine/orders.py) -----------------
# One row per placed order (ORC-2 placer number), or per result that named no order we know
# (`unknown` = 1: accepted and flagged). Status follows the last step of its timeline.
orders = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),                  # lab | radiology
    Column("channel", String(120), nullable=False, default=""),  # the channel that tracks it (its SLA)
    Column("placer_number", String(250), nullable=False, default=""),
    Column("filler_number", String(250), nullable=False, default=""),
    Column("accession_number", String(250), nullable=False, default=""),
    Column("patient_id", String(250), nullable=False, default=""),
    Column("code", String(250), nullable=False, default=""),     # OBR-4.1 (the test or procedure)
    Column("priority", String(16), nullable=False, default="routine"),   # stat | asap | routine
    Column("status", String(24), nullable=False),
    Column("unknown", Integer, nullable=False, default=0),
    Column("placed_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("due_at", Float),             # placed_at + the SLA of its priority; NULL = no SLA
    Column("final_at", Float),
    Column("overdue_at", Float),         # when the SLA breach was raised (once per order)
    Column("study_found_at", Float),     # radiology: the ImagingStudy was built from the PACS
    Column("study_alerted_at", Float),   # radiology: no study within the configured time
)
Index("ix_orders_placer", orders.c.placer_number)
Index("ix_orders_filler", orders.c.filler_number)
Index("ix_orders_accession", orders.c.accession_number)
Index("ix_orders_due", orders.c.final_at, orders.c.due_at)

order_events = Table(
    "order_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("at", Float, nullable=False),
    # placed, changed, cancelled, sent, rejected, accepted, status, specimen_collected,
    # study_acquired, preliminary, final, corrected, critical, overdue, study_missing
    Column("step", String(24), nullable=False),
    Column("detail", String(250), nullable=False, default=""),   # e.g. "ORC-5 IP"; never patient data
    Column("message_id", Integer),
)
Index("ix_order_events_order", order_events.c.order_id, order_events.c.id)

# Business events (revision 0006_events; written by engine/events.py): 1 = deliver ahead of a backlog.
# The processor takes `received` priority messages before the others (ix_messages_priority finds
# them without walking the backlog), so a critical result is routed the moment it is stored.
messages.append_column(Column("priority", Integer, nullable=False, server_default="0", default=0))
Index("ix_messages_priority", messages.c.status, messages.c.priority, messages.c.id)
# ---- users, roles, tokens, sessions and the audit hash chain (revision 0009_access; owned by access/) ----

# The audit trail says who (actor and the role they acted in), from where (client address), and
# is a hash chain: each event carries the hash of the one before it (`prev_hash`) and its own
# (`hash`, over its content and `prev_hash`), so a changed or removed row breaks the chain at that
# row and `simpul audit verify` names it.
audit_events.append_column(Column("role", String(32), nullable=False, default=""))
audit_events.append_column(Column("client", String(64), nullable=False, default=""))
audit_events.append_column(Column("prev_hash", String(64), nullable=False, default=""))
audit_events.append_column(Column("hash", String(64), nullable=False, default=""))

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("role", String(32), nullable=False),                 # viewer | operator | analyst | admin
    Column("password_hash", Text, nullable=False),              # argon2id, with its parameters
    Column("totp_secret", String(64)),                          # base32; NULL = no TOTP
    Column("totp_last_step", Integer),                          # the step of the last code used (no replay)
    Column("created_at", Float, nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("disabled_at", Float),                               # NULL = may log in
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_id", String(16), nullable=False, unique=True),   # the public half: finds the row
    Column("secret_hash", String(64), nullable=False),             # sha256 of the secret half
    Column("name", String(120), nullable=False),
    Column("role", String(32), nullable=False),
    Column("scope", Text, nullable=False, default=""),      # permissions (comma list); "" = the role's
    Column("created_at", Float, nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
)

sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),                 # sha256 of the cookie value
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("second_factor", String(16), nullable=False, default=""),  # "" | totp | webauthn
    Column("client", String(64), nullable=False, default=""),
    Column("challenge", Text),                                  # a pending WebAuthn challenge (base64url)
)
Index("ix_sessions_user", sessions.c.user_id)

# Failed logins, counted per user name and per client address for throttling.
login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("user_name", String(120), nullable=False),
    Column("client", String(64), nullable=False),
)
Index("ix_login_failures_user", login_failures.c.user_name, login_failures.c.at)
Index("ix_login_failures_client", login_failures.c.client, login_failures.c.at)

webauthn_credentials = Table(
    "webauthn_credentials", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("credential_id", String(512), nullable=False, unique=True),   # base64url
    Column("public_key", LargeBinary, nullable=False),                   # COSE key
    Column("sign_count", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
)
Index("ix_webauthn_credentials_user", webauthn_credentials.c.user_id)


# ---- encounter-to-cash (simpul/billing) ---------------------------------------------------------
# Amounts are integer rupiah (BigInteger: a long ICU stay passes 2**31). Every row that a message
# caused names that message (message_id) and carries the key that makes it happen once
# (source_key): a replayed stream finds the key taken and changes nothing.

billing_accounts = Table(
    "billing_accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("visit_number", String(250), nullable=False, unique=True),   # PV1-19 / Encounter.identifier
    Column("patient_id", String(250), nullable=False, default=""),
    Column("payer_type", String(16), nullable=False, default="SELF_PAY"),   # BPJS | INSURANCE | SELF_PAY
    Column("payer_id", String(120), nullable=False, default=""),            # IN1-3 insurer id
    Column("payer_ref", String(120), nullable=False, default=""),           # IN1-36 card / SEP number
    Column("room_class", String(40), nullable=False, default=""),           # PV2-2 accommodation code
    Column("status", String(16), nullable=False),                           # open | closed | voided
    Column("admitted_at", Float),
    Column("discharged_at", Float),
    Column("updated_at", Float, nullable=False),
)

billing_account_events = Table(
    "billing_account_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("billing_accounts.id"), nullable=False),
    # opened updated transferred closed reopened voided ignored (a message for a voided account)
    Column("transition", String(16), nullable=False),
    Column("event_code", String(32), nullable=False),    # ADT^A02, patient_discharged ...
    Column("room_class", String(40), nullable=False, default=""),
    Column("occurred_at", Float, nullable=False),        # clinical time (EVN-6/PV1-44/PV1-45), bed-days use it
    Column("message_id", Integer, nullable=True),        # the source message
    Column("source_key", String(250), nullable=False, unique=True),
)
Index("ix_billing_account_events_account", billing_account_events.c.account_id, billing_account_events.c.id)

billing_invoices = Table(
    "billing_invoices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_no", String(120), nullable=False, unique=True),
    Column("account_id", Integer, ForeignKey("billing_accounts.id"), nullable=False),
    Column("idempotency_key", String(160), nullable=False, unique=True),
    Column("status", String(24), nullable=False),       # generated | posted | partially_paid | paid | rejected
    Column("total", BigInteger, nullable=False),         # expected: the itemized charges
    Column("claimed_amount", BigInteger),               # BPJS: INA-CBG tariff; the difference is tracked
    Column("posted_amount", BigInteger),                # what the ERP booked
    Column("paid_amount", BigInteger, nullable=False, default=0),
    Column("approved_amount", BigInteger),
    Column("erp_invoice_no", String(120), nullable=False, default=""),
    Column("erp_status", String(32), nullable=False, default=""),
    Column("document", Text, nullable=False),            # the ERP request (JSON) as sent
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_billing_invoices_updated", billing_invoices.c.updated_at, billing_invoices.c.id)

billing_charges = Table(
    "billing_charges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("billing_accounts.id"), nullable=False),
    Column("source_key", String(250), nullable=False, unique=True),
    Column("origin", String(16), nullable=False),        # dft | lab | radiology | bed
    Column("service_code", String(80), nullable=False),
    Column("description", String(250), nullable=False, default=""),
    Column("quantity", Integer, nullable=False),          # negative for a credit / reversal
    Column("unit_price", BigInteger),                     # NULL while unpriced: never priced at zero
    Column("amount", BigInteger),
    Column("tarif_bucket", String(40), nullable=False, default=""),
    Column("room_class", String(40), nullable=False, default=""),   # the class the tariff is looked up for
    Column("service_date", String(10), nullable=False),   # YYYY-MM-DD, picks the tariff's validity
    Column("status", String(16), nullable=False),         # priced | unpriced | void
    Column("invoice_id", Integer, ForeignKey("billing_invoices.id"), nullable=True),
    Column("message_id", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_billing_charges_account", billing_charges.c.account_id, billing_charges.c.status)
Index("ix_billing_charges_status", billing_charges.c.status, billing_charges.c.id)

billing_reconciliation_items = Table(
    "billing_reconciliation_items", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # amount_differs | unknown_invoice | payment_without_invoice | claim_rejected | balance_open
    Column("kind", String(32), nullable=False),
    Column("invoice_no", String(120), nullable=False, default=""),
    Column("erp_invoice_no", String(120), nullable=False, default=""),
    Column("expected", BigInteger),
    Column("actual", BigInteger),
    Column("payer_type", String(16), nullable=False, default=""),
    Column("detail", String(250), nullable=False, default=""),   # codes and numbers only, no patient data
    Column("status", String(16), nullable=False),                # open | resolved
    Column("opened_at", Float, nullable=False),
    Column("resolved_at", Float),
    UniqueConstraint("kind", "invoice_no", "erp_invoice_no", name="uq_billing_reconciliation_item"),
)
Index("ix_billing_reconciliation_open", billing_reconciliation_items.c.status, billing_reconciliation_items.c.id)

billing_state = Table(
    "billing_state", metadata,
    Column("name", String(64), primary_key=True),         # intake cursor, ERP poll cursor
    Column("value", String(250), nullable=False),
)

# BPJS VClaim, E-Klaim and SATUSEHAT submissions (revision 0011_bpjs; written by
# connectors/bpjs/ledger.py). One row per attempt at one thing a national service must hold: the
# SEP of a visit, its INA-CBG claim, each SATUSEHAT resource. A refused row keeps the service's
# own message; the corrected resubmission points back at it (`supersedes`). No patient data:
# visit numbers, our resource ids and the service's ids only.
national_submissions = Table(
    "national_submissions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(20), nullable=False),          # vclaim | eklaim | satusehat
    Column("kind", String(40), nullable=False),             # sep | claim | Encounter | Condition | ...
    Column("visit", String(120), nullable=False),           # the local visit number (PV1-19)
    Column("local_ref", String(200), nullable=False),       # our resource id, or the visit again
    Column("remote_id", String(120), nullable=True),        # SEP number, SATUSEHAT id, INA-CBG code
    Column("status", String(20), nullable=False),           # sent | refused | cancelled
    Column("message", Text, nullable=True),                 # the service's message when refused
    Column("detail", Text, nullable=True),                  # JSON without PHI (tariff, class, ...)
    Column("channel", String(120), nullable=False),
    Column("control_id", String(200), nullable=False),
    Column("supersedes", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_national_submissions_ref", national_submissions.c.service, national_submissions.c.local_ref,
      national_submissions.c.id)
Index("ix_national_submissions_visit", national_submissions.c.service, national_submissions.c.visit)

# Identifiers a national service assigned to our patients and practitioners (IHS numbers).
national_identities = Table(
    "national_identities", metadata,
    Column("service", String(20), primary_key=True),
    Column("kind", String(40), primary_key=True),           # patient | practitioner
    Column("local_key", String(200), primary_key=True),     # MRN system|value
    Column("remote_id", String(120), nullable=False),
    Column("updated_at", Float, nullable=False),
)

# The INA-CBG group E-Klaim gave the claim of this invoice's visit (written by the eklaim
# connector with claimed_amount, its tariff; revision 0011_bpjs).
billing_invoices.append_column(Column("inacbg_code", String(40), nullable=True))
