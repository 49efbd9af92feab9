"""On-call views of the national services (BPJS VClaim, E-Klaim, SATUSEHAT), for the CLI and the API.

What was sent comes from the ledger the connectors keep (national_submissions); what is pending
from the deliveries still queued for those destinations; what was refused from the ledger's
refused rows, each with the service's own message and whether a later submission corrected it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from simpul.connectors.bpjs.ledger import Submission, submissions
from simpul.dead_letters.query import DeadLetterFilter
from simpul.engine.channel_runtime import ChannelRuntime
from simpul.store.schema import deliveries, national_submissions

SERVICE_OF_CONNECTOR = {"bpjs_vclaim": "vclaim", "eklaim": "eklaim", "satusehat": "satusehat"}
WAITING = ("pending", "in_flight", "retry", "held")


def destinations_using(channels: Mapping[str, ChannelRuntime], connector: str) -> list[tuple[str, str]]:
    """(channel, destination label) of every destination that uses `connector`."""
    return [(name, destination.label) for name, runtime in sorted(channels.items())
            for destination in runtime.channel.destinations if destination.connector_name == connector]


def submission_view(row: Submission, corrected_by: int | None = None) -> dict[str, Any]:
    return {"id": row.id, "service": row.service, "kind": row.kind, "visit": row.visit, "status": row.status,
            "remote_id": row.remote_id, "message": row.message, "detail": row.detail, "channel": row.channel,
            "control_id": row.control_id, "supersedes": row.supersedes, "corrected_by": corrected_by,
            "created_at": row.created_at}


def _corrections(connection: Connection, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    table = national_submissions
    rows = connection.execute(sa.select(table.c.id, table.c.supersedes).where(table.c.supersedes.in_(ids)))
    return {int(row.supersedes): int(row.id) for row in rows}


def sep_report(connection: Connection, *, visit: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """SEPs issued and refused, newest first; a refusal shows the submission that corrected it."""
    rows = submissions(connection, service="vclaim", visit=visit, limit=limit)
    corrected = _corrections(connection, [row.id for row in rows if row.status == "refused"])
    return [submission_view(row, corrected.get(row.id)) for row in rows]


def pending_deliveries(connection: Connection, targets: list[tuple[str, str]]) -> list[dict[str, Any]]:
    if not targets:
        return []
    table = deliveries
    where = sa.or_(*[sa.and_(table.c.channel == channel, table.c.destination == label) for channel, label in targets])
    rows = connection.execute(sa.select(table.c.id, table.c.channel, table.c.destination, table.c.status,
                                        table.c.attempts, table.c.created_at, table.c.next_attempt_at, table.c.last_error)
                              .where(where, table.c.status.in_(WAITING)).order_by(table.c.id)).mappings().all()
    return [dict(row) for row in rows]


def service_status(connection: Connection, service: str, targets: list[tuple[str, str]], *,
                   visit: str | None = None, limit: int = 50) -> dict[str, Any]:
    """What was sent (counts by kind, latest), what is pending, what was refused and why."""
    table = national_submissions
    query = (sa.select(table.c.kind, table.c.status, sa.func.count().label("n"))
             .where(table.c.service == service).group_by(table.c.kind, table.c.status))
    if visit:
        query = query.where(table.c.visit == visit)
    counts: dict[str, dict[str, int]] = {}
    for row in connection.execute(query):
        counts.setdefault(str(row.status), {})[str(row.kind)] = int(row.n)
    refused = submissions(connection, service=service, status="refused", visit=visit, limit=limit)
    corrected = _corrections(connection, [row.id for row in refused])
    return {
        "service": service,
        "sent": counts.get("sent", {}),
        "latest": [submission_view(row) for row in submissions(connection, service=service, status="sent",
                                                                visit=visit, limit=min(limit, 20))],
        "pending": pending_deliveries(connection, targets),
        "refused": [submission_view(row, corrected.get(row.id)) for row in refused],
    }


def retry_filters(visit: str, targets: list[tuple[str, str]]) -> list[DeadLetterFilter]:
    """The open dead letters of these destinations for one visit (PV1-19), to replay after a fix."""
    return [DeadLetterFilter(channel=channel, destination=label, status="open", visit_number=visit)
            for channel, label in targets]
