"""The audit trail's hash chain: how one event's hash is computed from its content and the hash of
the event before it. Here, in the store layer, because the migration that chained the events
written before the chain existed (revision 0006) computes exactly the same hash as the code that
writes new events and the command that verifies them.

The hash is SHA-256 over a JSON array of the event's fields in a fixed order, ending with the
previous event's hash. The row id is not part of it (a PostgreSQL sequence may skip ids); a
removed row shows as the next row's `prev_hash` not matching the row now before it.
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS = "0" * 64          # the `prev_hash` of the first event
CHAINED_FIELDS = ("at", "actor", "role", "action", "target", "reason", "detail", "client")


def event_hash(event: dict[str, Any], prev_hash: str) -> str:
    """The hash of one event (its CHAINED_FIELDS, as stored) chained to `prev_hash`."""
    fields = [event.get(name) for name in CHAINED_FIELDS]
    return hashlib.sha256(orjson.dumps([*fields, prev_hash])).hexdigest()
