"""What the national-service connectors remember between deliveries, and what on-call reads back.

`StoreLedger` keeps it in the engine's store (tables national_submissions / national_identities,
revision 0011_bpjs), opened from the connector's `ledger_url` (normally ${SIMPUL_DATABASE_URL},
the engine's own database); `MemoryLedger` keeps it in the process (a connector without a
ledger_url: retries within one run still do not send twice, but `simpul bpjs`/`satusehat` show
nothing). Calls are blocking and short; connectors run them in a worker thread.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from simpul.store.database import open_database
from simpul.store.schema import (
    billing_accounts, billing_charges, billing_invoices, national_identities, national_submissions,
)


@dataclass(frozen=True)
class Submission:
    id: int
    service: str
    kind: str
    visit: str
    local_ref: str
    remote_id: str | None
    status: str
    message: str | None
    detail: dict[str, Any]
    channel: str
    control_id: str
    supersedes: int | None
    created_at: float


class Ledger(Protocol):
    def record(self, service: str, kind: str, visit: str, local_ref: str, *, status: str,
               remote_id: str | None = None, message: str | None = None, detail: dict[str, Any] | None = None,
               channel: str = "", control_id: str = "") -> Submission: ...

    def latest(self, service: str, local_ref: str) -> Submission | None: ...

    def for_visit(self, service: str, visit: str) -> list[Submission]: ...

    def identity(self, service: str, kind: str, local_key: str) -> str | None: ...

    def remember(self, service: str, kind: str, local_key: str, remote_id: str) -> None: ...

    def billed_tarif_rs(self, visit: str) -> dict[str, int] | None: ...

    def claim_on_invoice(self, visit: str, cbg_code: str, tariff: int) -> str | None: ...


@dataclass
class MemoryLedger:
    rows: list[Submission] = field(default_factory=list)
    identities: dict[tuple[str, str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, service: str, kind: str, visit: str, local_ref: str, *, status: str,
               remote_id: str | None = None, message: str | None = None, detail: dict[str, Any] | None = None,
               channel: str = "", control_id: str = "") -> Submission:
        with self._lock:
            previous = self.latest(service, local_ref)
            row = Submission(len(self.rows) + 1, service, kind, visit, local_ref, remote_id, status, message,
                             detail or {}, channel, control_id, _supersedes(previous, status), time.time())
            self.rows.append(row)
            return row

    def latest(self, service: str, local_ref: str) -> Submission | None:
        return next((row for row in reversed(self.rows) if row.service == service and row.local_ref == local_ref),
                    None)

    def for_visit(self, service: str, visit: str) -> list[Submission]:
        return [row for row in self.rows if row.service == service and row.visit == visit]

    def identity(self, service: str, kind: str, local_key: str) -> str | None:
        return self.identities.get((service, kind, local_key))

    def remember(self, service: str, kind: str, local_key: str, remote_id: str) -> None:
        self.identities[(service, kind, local_key)] = remote_id

    def billed_tarif_rs(self, visit: str) -> dict[str, int] | None:
        return None          # no store, no billing tables

    def claim_on_invoice(self, visit: str, cbg_code: str, tariff: int) -> str | None:
        return None


def _supersedes(previous: Submission | None, status: str) -> int | None:
    """A submission after a refusal of the same thing corrects it: keep the link."""
    if previous is None:
        return None
    if previous.status == "refused":
        return previous.id
    return previous.supersedes if previous.status == status else None


class StoreLedger:
    def __init__(self, url: str) -> None:
        self.engine = open_database(url, migrate=False)

    def close(self) -> None:
        self.engine.dispose()

    def record(self, service: str, kind: str, visit: str, local_ref: str, *, status: str,
               remote_id: str | None = None, message: str | None = None, detail: dict[str, Any] | None = None,
               channel: str = "", control_id: str = "") -> Submission:
        with self.engine.begin() as connection:
            previous = _latest(connection, service, local_ref)
            values = dict(service=service, kind=kind, visit=visit, local_ref=local_ref, remote_id=remote_id,
                          status=status, message=message, detail=json.dumps(detail or {}), channel=channel,
                          control_id=control_id, supersedes=_supersedes(previous, status), created_at=time.time())
            inserted = connection.execute(national_submissions.insert().values(**values)).inserted_primary_key
            assert inserted is not None
            new_id = inserted[0]
        return _row({**values, "id": new_id})

    def latest(self, service: str, local_ref: str) -> Submission | None:
        with self.engine.connect() as connection:
            return _latest(connection, service, local_ref)

    def for_visit(self, service: str, visit: str) -> list[Submission]:
        table = national_submissions
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(table).where(table.c.service == service, table.c.visit == visit)
                                      .order_by(table.c.id)).mappings().all()
        return [_row(dict(row)) for row in rows]

    def identity(self, service: str, kind: str, local_key: str) -> str | None:
        table = national_identities
        with self.engine.connect() as connection:
            found = connection.execute(sa.select(table.c.remote_id).where(
                table.c.service == service, table.c.kind == kind, table.c.local_key == local_key)).scalar()
        return str(found) if found is not None else None

    def remember(self, service: str, kind: str, local_key: str, remote_id: str) -> None:
        table = national_identities
        with self.engine.begin() as connection:
            connection.execute(table.delete().where(table.c.service == service, table.c.kind == kind,
                                                    table.c.local_key == local_key))
            connection.execute(table.insert().values(service=service, kind=kind, local_key=local_key,
                                                     remote_id=remote_id, updated_at=time.time()))


    def billed_tarif_rs(self, visit: str) -> dict[str, int] | None:
        """The visit's invoiced charges summed per tarif_rs bucket (encounter-to-cash's tables), or
        None while the visit has no invoice yet (stay not closed, or a charge still unpriced)."""
        with self.engine.connect() as connection:
            invoices = _invoice_ids(connection, visit)
            if not invoices:
                return None
            rows = connection.execute(
                sa.select(billing_charges.c.tarif_bucket, sa.func.sum(billing_charges.c.amount))
                .where(billing_charges.c.invoice_id.in_(invoices), billing_charges.c.status == "priced")
                .group_by(billing_charges.c.tarif_bucket))
            return {str(bucket): int(total or 0) for bucket, total in rows}

    def claim_on_invoice(self, visit: str, cbg_code: str, tariff: int) -> str | None:
        """The INA-CBG code and tariff (claimed_amount) onto the visit's latest invoice; its number."""
        with self.engine.begin() as connection:
            invoices = _invoice_ids(connection, visit)
            if not invoices:
                return None
            connection.execute(billing_invoices.update().where(billing_invoices.c.id == invoices[-1])
                               .values(inacbg_code=cbg_code, claimed_amount=tariff, updated_at=time.time()))
            number = connection.execute(sa.select(billing_invoices.c.invoice_no)
                                        .where(billing_invoices.c.id == invoices[-1])).scalar()
        return str(number) if number is not None else None


def _invoice_ids(connection: sa.Connection, visit: str) -> list[int]:
    rows = connection.execute(
        sa.select(billing_invoices.c.id).join(billing_accounts, billing_accounts.c.id == billing_invoices.c.account_id)
        .where(billing_accounts.c.visit_number == visit).order_by(billing_invoices.c.id))
    return [int(row.id) for row in rows]


def _latest(connection: sa.Connection, service: str, local_ref: str) -> Submission | None:
    table = national_submissions
    row = connection.execute(sa.select(table).where(table.c.service == service, table.c.local_ref == local_ref)
                             .order_by(table.c.id.desc()).limit(1)).mappings().first()
    return _row(dict(row)) if row is not None else None


def _row(values: dict[str, Any]) -> Submission:
    detail = values.get("detail")
    return Submission(id=int(values["id"]), service=values["service"], kind=values["kind"], visit=values["visit"],
                      local_ref=values["local_ref"], remote_id=values["remote_id"], status=values["status"],
                      message=values["message"], detail=json.loads(detail) if isinstance(detail, str) else (detail or {}),
                      channel=values["channel"], control_id=values["control_id"], supersedes=values["supersedes"],
                      created_at=float(values["created_at"]))


def submissions(connection: sa.Connection, *, service: str | None = None, status: str | None = None,
                visit: str | None = None, limit: int = 200) -> list[Submission]:
    """On-call listing, newest first (used by the CLI and the HTTP API)."""
    table = national_submissions
    query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
    if service:
        query = query.where(table.c.service == service)
    if status:
        query = query.where(table.c.status == status)
    if visit:
        query = query.where(table.c.visit == visit)
    return [_row(dict(row)) for row in connection.execute(query).mappings().all()]


def open_ledger(url: str | None) -> Ledger:
    return StoreLedger(url) if url else MemoryLedger()
