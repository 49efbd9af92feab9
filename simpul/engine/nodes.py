"""Engine processes sharing one store: who runs which channel set, and what nobody can route.

Each process publishes a row in `engine_nodes` (its owner name, the hash of its channel set,
the source keys its channels listen on) at start, on every channel reload and every
HEARTBEAT seconds. A process routes only messages from its own sources (processor.py); this
module reports what that leaves open:

* config drift: live processes publish different channel set hashes (a channel file edited on
  one node only, or nodes that listen on different ports). Reported in /healthz, the
  `simpul_config_drift` gauge and one log line whenever the set of differing hashes changes.
* messages still `received` whose source no live process knows (their node died or lost the
  channel): they wait, they are never marked unrouted; counted in /healthz and a gauge.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from simpul.engine.channel_runtime import ChannelRuntime
from simpul.store.rows import EngineNode, engine_node_row
from simpul.store.schema import engine_nodes, messages
from simpul.store.status import MessageStatus

HEARTBEAT = 5.0
# A node that has not reported for this long is taken for dead (a kill -9 leaves its row behind).
LIVE_FOR = 4 * HEARTBEAT


def channel_set_hash(runtimes: Iterable[ChannelRuntime]) -> str:
    """Hash of the enabled channels' full definitions (sources, filters, destinations...)."""
    digest = hashlib.sha256()
    for text in sorted(runtime.channel.model_dump_json() for runtime in runtimes):
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def publish(connection: Connection, *, owner: str, channel_set: str, sources: list[str], started_at: float) -> None:
    """Insert or refresh this process's row (portable upsert: only this process writes its row)."""
    row = engine_node_row(owner=owner, channel_set_hash=channel_set, sources=json.dumps(sorted(sources)),
                          started_at=started_at, heartbeat_at=time.time())
    refreshed = {name: row[name] for name in ("channel_set_hash", "sources", "heartbeat_at")}
    if connection.execute(update(engine_nodes).where(engine_nodes.c.owner == row["owner"])
                          .values(**refreshed)).rowcount == 0:
        connection.execute(insert(engine_nodes).values(row))


def withdraw(connection: Connection, owner: str) -> None:
    connection.execute(delete(engine_nodes).where(engine_nodes.c.owner == owner))


@dataclass
class ClusterView:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    # channel set hash -> owners, only when live nodes disagree
    drift: dict[str, list[str]] = field(default_factory=dict)
    # source -> messages still `received` from it that no live node listens on
    unknown_sources: dict[str, int] = field(default_factory=dict)

    def health(self) -> dict[str, Any]:
        return {
            "engine_nodes": self.nodes,
            "config_drift": {"detected": bool(self.drift), "channel_sets": self.drift},
            "unroutable_received": {"messages": sum(self.unknown_sources.values()),
                                    "sources": self.unknown_sources},
        }


def cluster_view(connection: Connection) -> ClusterView:
    now = time.time()
    view = ClusterView()
    by_hash: dict[str, list[str]] = {}
    known: set[str] = set()
    for row in map(EngineNode.from_row, connection.execute(
            select(engine_nodes).where(engine_nodes.c.heartbeat_at >= now - LIVE_FOR).order_by(engine_nodes.c.owner))):
        sources = json.loads(row.sources)
        known.update(sources)
        by_hash.setdefault(row.channel_set_hash, []).append(row.owner)
        view.nodes.append({"owner": row.owner, "channel_set_hash": row.channel_set_hash, "sources": sources,
                           "heartbeat_age_seconds": round(now - row.heartbeat_at, 1)})
    if len(by_hash) > 1:
        view.drift = by_hash
    waiting = connection.execute(select(messages.c.source, func.count()).where(
        messages.c.status == MessageStatus.RECEIVED).group_by(messages.c.source))
    view.unknown_sources = {source: int(count) for source, count in waiting if source not in known}
    return view
