"""Typed rows and row builders agree with the tables, and survive a round trip on both backends."""
from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Table, select

from simpul.store import rows, schema
from simpul.store.database import open_database
from simpul.store.status import (
    UNFINISHED_DELIVERY, AttemptOutcome, DeadLetterStatus, DeliveryStatus, MessageStatus,
)
from simpul.store.writer import insert_rows

STORE = Path(rows.__file__).resolve().parent

# table -> (the class its reads return, the builder its writes use)
TABLES: dict[str, tuple[type, Any]] = {
    "messages": (rows.Message, rows.message_row),
    "deliveries": (rows.Delivery, rows.delivery_row),
    "delivery_attempts": (rows.DeliveryAttempt, rows.delivery_attempt_row),
    "dead_letters": (rows.DeadLetter, rows.dead_letter_row),
    "dead_letter_edits": (rows.DeadLetterEdit, rows.dead_letter_edit_row),
    "replays": (rows.Replay, rows.replay_row),
    "audit_events": (rows.AuditEvent, rows.audit_event_row),
    "destination_controls": (rows.DestinationControl, rows.destination_control_row),
    "archives": (rows.Archive, rows.archive_row),
    "archive_entries": (rows.ArchiveEntry, rows.archive_entry_row),
    "engine_nodes": (rows.EngineNode, rows.engine_node_row),
    "orders": (rows.Order, rows.order_row),
    "order_events": (rows.OrderEvent, rows.order_event_row),
    "users": (rows.User, rows.user_row),
    "api_tokens": (rows.ApiToken, rows.api_token_row),
    "sessions": (rows.SessionRow, rows.session_row),
    "login_failures": (rows.LoginFailure, rows.login_failure_row),
    "webauthn_credentials": (rows.WebauthnCredential, rows.webauthn_credential_row),
}


def _generated(table: Table) -> set[str]:
    """Columns the database fills in: the autoincrement id."""
    return {column.name for column in table.columns if column.primary_key and column.autoincrement is True}


# The encounter-to-cash tables are written only by simpul/billing, and the national-services ledger
# only by connectors/bpjs/ledger.py, each row built in one function there; they have no typed row
# class yet.
UNTYPED_TABLES = {name for name in schema.metadata.tables
                  if name.startswith("billing_") or name in ("national_identities", "national_submissions")}


def test_every_table_has_a_row_class_and_a_builder() -> None:
    assert set(TABLES) == set(schema.metadata.tables) - UNTYPED_TABLES


@pytest.mark.parametrize("name", sorted(TABLES))
def test_row_class_names_exactly_the_columns_in_order(name: str) -> None:
    kind, _ = TABLES[name]
    table = schema.metadata.tables[name]
    assert [field.name for field in dataclasses.fields(kind)] == [column.name for column in table.columns]
    assert kind.__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.fixture
def store(database_url: str) -> Iterator[sa.Engine]:
    engine = open_database(database_url)
    yield engine
    engine.dispose()


def _insert(connection: sa.Connection, table: Table, values: dict[str, Any]) -> int:
    assert set(values) == {column.name for column in table.columns} - _generated(table), table.name
    return int(connection.execute(table.insert().values(values)).inserted_primary_key[0])


def _read(connection: sa.Connection, table: Table, kind: Any, row_id: int) -> Any:
    return kind.from_row(connection.execute(select(table).where(table.c.id == row_id)).one())


def test_built_rows_read_back_as_typed_rows(store: sa.Engine) -> None:
    """Every builder's row inserts on this backend and reads back field for field, statuses as enums."""
    long_name = "LAB" * 100      # longer than the 180 characters of the column: kept, cut, not refused
    with store.begin() as connection:
        header = SimpleNamespace(sending_application=long_name, sending_facility="HOSP", receiving_application="EHR",
                                 receiving_facility="HOSP", message_type="ORU^R01", control_id="C-1",
                                 version_id="2.5.1")
        keys = SimpleNamespace(patient_id="MR1", visit_number="V1", placer_number="", filler_number="",
                               accession_number="ACC1")
        message_values = rows.message_row(
            "mllp:2575", MessageStatus.RECEIVED, 1.5, b"MSH|^~\\&|LAB\r", b"MSH|^~\\&|ACK\r", "AA",
            charset="utf-8", content_hash="ab" * 16, header=header, keys=keys)
        message_id = _insert(connection, schema.messages, message_values)
        message = _read(connection, schema.messages, rows.Message, message_id)
        assert message == rows.Message(id=message_id, **message_values)
        assert message.sending_application == long_name[:180]
        assert type(message.status) is MessageStatus and message.status is MessageStatus.RECEIVED

        delivery_id = _insert(connection, schema.deliveries, rows.delivery_row(
            message_id=message_id, channel="lab", destination="fhir", order_key="MR1", payload=b"{}",
            content_type="application/fhir+json", created_at=1.5, next_attempt_at=2.0))
        delivery = _read(connection, schema.deliveries, rows.Delivery, delivery_id)
        assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 0
        assert (delivery.payload, delivery.replay_of, delivery.lease_owner) == (b"{}", None, None)

        attempt_id = _insert(connection, schema.delivery_attempts, rows.delivery_attempt_row(
            delivery_id=delivery_id, attempt=1, started_at=2.0, finished_at=2.1, outcome=AttemptOutcome.FAILED,
            error_class="ConnectorRejected", error="HTTP 422"))
        attempt = _read(connection, schema.delivery_attempts, rows.DeliveryAttempt, attempt_id)
        assert attempt.outcome is AttemptOutcome.FAILED and attempt.error == "HTTP 422"

        dead_id = _insert(connection, schema.dead_letters, rows.dead_letter_row(
            message, created_at=3.0, channel="lab", destination="fhir", stage="fhir",
            error_class="ConnectorRejected", error="HTTP 422", attempts=1, delivery_id=delivery_id,
            payload=b"{}"))
        dead = _read(connection, schema.dead_letters, rows.DeadLetter, dead_id)
        assert dead.status is DeadLetterStatus.OPEN
        # The entry carries the message's bytes and search keys, so it stands without the message.
        assert (dead.raw, dead.message_type, dead.control_id, dead.patient_id, dead.visit_number,
                dead.accession_number) == (message.raw, "ORU^R01", "C-1", "MR1", "V1", "ACC1")

        edit_id = _insert(connection, schema.dead_letter_edits, rows.dead_letter_edit_row(
            dead_letter_id=dead_id, at=4.0, actor="nurse.ana", reason="typo", raw=b"MSH|fixed\r", payload=None,
            content_type=""))
        assert _read(connection, schema.dead_letter_edits, rows.DeadLetterEdit, edit_id).raw == b"MSH|fixed\r"

        audit_id = _insert(connection, schema.audit_events, rows.audit_event_row(
            at=4.0, actor="x" * 200, action="dead_letter.replay", target="dead_letters:1", reason="fixed",
            detail="{}"))
        event = _read(connection, schema.audit_events, rows.AuditEvent, audit_id)
        assert event.actor == "x" * 120 and event.prev_hash == "0" * 64 and len(event.hash) == 64

        replay_id = _insert(connection, schema.replays, rows.replay_row(
            at=4.0, audit_event_id=audit_id, dead_letter_id=dead_id, original_delivery_id=delivery_id,
            delivery_id=delivery_id, edit_id=edit_id, destination="fhir"))
        assert _read(connection, schema.replays, rows.Replay, replay_id).edit_id == edit_id

        control = rows.destination_control_row(channel="lab", destination="fhir", paused_at=5.0,
                                               paused_by="nurse.ana", reason="downtime", updated_at=5.0)
        connection.execute(schema.destination_controls.insert().values(control))
        read_control = rows.DestinationControl.from_row(connection.execute(select(schema.destination_controls)).one())
        assert read_control == rows.DestinationControl(**control)

        archive_id = _insert(connection, schema.archives, rows.archive_row(
            at=6.0, actor="retention", channel="lab", path="/tmp/a.jsonl.gz", sha256="0" * 64, messages=1,
            received_from=1.0, received_until=2.0, key_id="k1", size=10))
        archive = _read(connection, schema.archives, rows.Archive, archive_id)
        assert (archive.encrypted, archive.key_id, archive.bytes) == (1, "k1", 10)

        entry_id = _insert(connection, schema.archive_entries, rows.archive_entry_row(
            archive_id=archive_id, message_id=message_id, channel="lab", received_at=1.5, message_type="ORU^R01",
            control_id="C-1", patient_id="MR1"))
        assert _read(connection, schema.archive_entries, rows.ArchiveEntry, entry_id).archive_id == archive_id

        user_id = _insert(connection, schema.users, rows.user_row(
            name="ana", role="operator", password_hash="$argon2id$...", created_at=7.0, created_by="root"))
        assert _read(connection, schema.users, rows.User, user_id).disabled_at is None
        token_row_id = _insert(connection, schema.api_tokens, rows.api_token_row(
            token_id="ab12", secret_hash="0" * 64, name="erp", role="operator", scope="", created_at=7.0,
            created_by="root", expires_at=8.0))
        assert _read(connection, schema.api_tokens, rows.ApiToken, token_row_id).revoked_at is None
        session = rows.session_row(id="f" * 64, user_id=user_id, csrf_token="c", created_at=7.0, expires_at=9.0,
                                   client="127.0.0.1")
        connection.execute(schema.sessions.insert().values(session))
        read_session = rows.SessionRow.from_row(connection.execute(select(schema.sessions)).one())
        assert read_session == rows.SessionRow(**session)
        failure_id = _insert(connection, schema.login_failures, rows.login_failure_row(
            at=7.0, user_name="ana", client="10.0.0.9"))
        assert _read(connection, schema.login_failures, rows.LoginFailure, failure_id).client == "10.0.0.9"
        key_id = _insert(connection, schema.webauthn_credentials, rows.webauthn_credential_row(
            user_id=user_id, credential_id="AAEC", public_key=b"\xa5\x01", sign_count=0, created_at=7.0))
        assert _read(connection, schema.webauthn_credentials, rows.WebauthnCredential, key_id).public_key == b"\xa5\x01"


def test_enum_members_are_stored_as_their_text(store: sa.Engine) -> None:
    """The driver-level executemany (the hot insert path) stores a status as plain text that a
    query by text finds, and a query by member finds rows written as text."""
    with store.begin() as connection:
        message_id = _insert(connection, schema.messages, rows.message_row(
            "http", MessageStatus.ROUTED, 1.0, b"MSH|\r", None, "AR", charset="", content_hash=""))
        insert_rows(connection, schema.deliveries, [rows.delivery_row(
            message_id=message_id, channel="c", destination=f"d{n}", order_key="", payload=b"",
            content_type="text/plain", created_at=1.0, next_attempt_at=1.0) for n in range(3)])
        stored = connection.execute(sa.text("SELECT status FROM deliveries")).scalars().all()
        assert stored == ["pending"] * 3
        d = schema.deliveries.c
        assert connection.execute(select(sa.func.count()).where(d.status.in_(UNFINISHED_DELIVERY))).scalar_one() == 3


def test_unfinished_deliveries_are_the_ones_that_hold_a_key() -> None:
    assert set(UNFINISHED_DELIVERY) == {DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT, DeliveryStatus.HELD}
    assert set(UNFINISHED_DELIVERY).isdisjoint({DeliveryStatus.DELIVERED, DeliveryStatus.DEAD})


def test_store_imports_only_the_layers_below_it() -> None:
    """The store sits under connectors, engine and operations: it may use simpul.errors, nothing
    above, and every import is at the top of its module where a reader sees it."""
    allowed = ("simpul.store", "simpul.errors", "simpul.v2")
    found: list[str] = []
    for path in STORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            where = f"{path.relative_to(STORE)}:{node.lineno}"
            if id(node) not in top_level:
                found.append(f"{where}: import inside a function or block")
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found.extend(f"{where}: {name}" for name in names
                         if name.startswith("simpul") and not name.startswith(allowed))
    assert found == []
