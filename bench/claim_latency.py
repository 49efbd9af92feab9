"""What one claim costs with N deliveries waiting in the store (many keys and one key).

    .venv/bin/python bench/claim_latency.py [--sizes 10,1000000] [--database URL]

The store is filled directly (one INSERT ... SELECT over a generated series per table, so a
million rows take seconds, not minutes), then the destination worker's own claim runs through
the engine's StoreWriter, as in `simpul run`: `writer.run(worker._claim_job(runs, budget, []))`
(8 deliveries per claim: one from each of 8 keys, or a run of 8 of the one key). Each timed
claim is followed by an untimed update that marks what it took as delivered, so the next claim
finds the following head of the queue (the steady state of a worker draining a backlog).
The only engine coupling is DestinationWorker's constructor and its claim job.

many keys: the waiting deliveries spread over 2,000 ordering keys (the mix's patient pool).
one key:   every waiting delivery has the same key (one patient, or a channel ordered as a whole).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from simpul.engine.config.channel import RetryPolicy
from simpul.engine.delivery import DestinationWorker
from simpul.engine.metrics import Metrics
from simpul.store.database import open_database
from simpul.store.writer import StoreWriter

CHANNEL, LABEL = "bench", "fhir"
CLAIM_LIMIT = 8          # a destination's default max_in_flight
REPEATS = 7
MANY_KEYS = 2000

_MESSAGES = (
    "INSERT INTO messages (received_at, source, status, sending_application, sending_facility, "
    "receiving_application, receiving_facility, message_type, control_id, version_id, charset, content_hash, "
    "patient_id, visit_number, placer_number, filler_number, accession_number, raw, ack_code, duplicates) "
    "SELECT :t0 + i * 0.0001, 'bench', 'routed', 'LIS', 'LAB', 'SIMPUL', 'RS', 'ORU^R01', 'C' || i, '2.5.1', "
    "'ascii', '', 'P' || (i % :keys), '', '', '', '', :raw, 'AA', 0 FROM n")
_DELIVERIES = (
    "INSERT INTO deliveries (message_id, channel, destination, order_key, status, attempts, created_at, "
    "next_attempt_at, payload, content_type) "
    "SELECT id, :channel, :label, patient_id, 'pending', 0, received_at, 0, :raw, 'application/fhir+json' "
    "FROM messages WHERE id > :after ORDER BY id")


def _series(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
    return "WITH n(i) AS (SELECT generate_series(1, :count)) "


def populate(engine: Engine, count: int, keys: int) -> None:
    """Add `count` routed messages with one pending delivery each, spread over `keys` ordering keys."""
    with engine.begin() as connection:
        after = connection.execute(text("SELECT coalesce(max(id), 0) FROM messages")).scalar_one()
        connection.execute(text(_series(engine) + _MESSAGES),
                           {"count": count, "keys": keys, "t0": time.time() - 3600, "raw": b"MSH|^~\\&|x"})
        connection.execute(text(_DELIVERIES), {"channel": CHANNEL, "label": LABEL, "raw": b"{}", "after": after})


def clear(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # A DELETE of a million rows checks every foreign key row by row (minutes); the store
            # is the benchmark's own, so TRUNCATE (with what references it) is fine.
            connection.execute(text("TRUNCATE messages, deliveries CASCADE"))
            return
        connection.execute(text("DELETE FROM deliveries"))
        connection.execute(text("DELETE FROM messages"))


@dataclass
class ClaimTiming:
    waiting: int
    keys: str            # "many" | "one"
    median_ms: float
    max_ms: float
    claimed: int         # deliveries the timed claims returned in all


async def time_claims(engine: Engine, waiting: int, keys: str) -> ClaimTiming:
    writer = StoreWriter(engine)
    writer.start()
    # connector=None: the claim never touches the connector (sends are not timed here).
    worker = DestinationWorker(CHANNEL, LABEL, None, RetryPolicy(), writer=writer, metrics=Metrics(),  # type: ignore[arg-type]
                               max_in_flight=CLAIM_LIMIT, lease=60.0, poll_interval=0.5, owner="bench-claim",
                               # 8 deliveries per claim at every size: 8 keys of one each, or one key's run of 8
                               run_length=1 if keys == "many" else CLAIM_LIMIT)
    timings, claimed = [], 0
    try:
        for _ in range(REPEATS):
            if len(timings) >= 3 and sum(timings) > 5000:
                break       # a claim that costs seconds is measured three times, not seven
            started = time.perf_counter()
            taken = await writer.run(worker._claim_job(CLAIM_LIMIT, CLAIM_LIMIT * worker.run_length, []))
            timings.append((time.perf_counter() - started) * 1000.0)
            ids = [item.id for run in taken.runs for item in run]
            claimed += len(ids)
            if ids:
                await writer.run(lambda connection: connection.execute(
                    text("UPDATE deliveries SET status = 'delivered', delivered_at = :now WHERE id IN (%s)"
                         % ",".join(str(i) for i in ids)), {"now": time.time()}))
    finally:
        await writer.stop()
    return ClaimTiming(waiting, keys, statistics.median(timings), max(timings), claimed)


def measure(database_url: str | None, sizes: list[int], progress: Any = print) -> list[ClaimTiming]:
    """Claim timings at every size, many keys and one key; a fresh SQLite file unless a URL is given."""
    logging.getLogger("simpul.store").setLevel(logging.ERROR)   # "slow store transaction" is what we measure
    folder = None
    if database_url is None:
        folder = tempfile.mkdtemp(prefix="simpul-bench-claims-")
        database_url = f"sqlite:///{Path(folder) / 'claims.db'}"
    engine = open_database(database_url)
    results = []
    try:
        for keys in ("many", "one"):
            for size in sizes:
                clear(engine)
                started = time.monotonic()
                populate(engine, size, MANY_KEYS if keys == "many" else 1)
                filled = time.monotonic() - started
                timing = asyncio.run(time_claims(engine, size, keys))
                progress(f"  claim with {size:>9,} waiting, {'many keys' if keys == 'many' else 'one key'}: median {timing.median_ms:.2f} ms "
                         f"(store filled in {filled:.1f} s)")
                results.append(timing)
        if folder is None:
            clear(engine)   # a store given by URL is left empty; a temporary one is removed
    finally:
        engine.dispose()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000000")
    parser.add_argument("--database", default=None, help="a store URL (default: a fresh SQLite file)")
    arguments = parser.parse_args()
    measure(arguments.database, [int(part) for part in arguments.sizes.split(",")])
