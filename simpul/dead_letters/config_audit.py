"""Channel configuration changes as audit events.

Channels are YAML files in git and the engine reloads them when they change (engine/runtime.py),
so a change does not pass through the console or the API. This engine task watches what the
engine runs and appends an audit event when it starts (`channels.load`) and whenever the running
set changes (`channels.reload`: which channels were added, removed or changed, with a short hash
of each one's effective configuration), so the audit trail also answers "what was the channel
configuration when this message went out".
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import orjson

from simpul.dead_letters.audit import Actor, record_audit

log = logging.getLogger("simpul.audit")
WATCH_INTERVAL = 1.0


def channel_fingerprints(channels: dict[str, Any]) -> dict[str, str]:
    """name -> the first 16 hex digits of the SHA-256 of the channel's effective configuration."""
    return {name: hashlib.sha256(orjson.dumps(runtime.channel.model_dump(mode="json"),
                                              option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
            for name, runtime in sorted(channels.items())}


def describe_change(before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    return {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
            "changed": sorted(name for name in set(before) & set(after) if before[name] != after[name]),
            "channels": after}


async def audit_channel_changes(engine: Any, *, interval: float = WATCH_INTERVAL) -> None:
    """The engine task: one audit event at start, one per change of the running channel set."""
    actor = Actor("simpul-engine", role="system", client=str(engine.owner)[:64])
    previous: dict[str, str] | None = None
    while True:
        current = channel_fingerprints(dict(engine.channels))
        if current != previous:
            action = "channels.load" if previous is None else "channels.reload"
            detail = {"channels": current} if previous is None else describe_change(previous, current)
            try:
                await engine.writer.run(lambda c: record_audit(c, actor=actor, action=action, target="channels",
                                                               reason=None, detail=detail), durable=True)
                previous = current
            except Exception as exc:  # noqa: BLE001 - the engine keeps running; the next look retries
                log.error("channel change not audited yet", extra={"error_class": type(exc).__name__})
        await asyncio.sleep(interval)
