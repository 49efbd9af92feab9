"""Message search speed on a large store: the queries the console's search page runs.

    .venv/bin/python bench/console_search.py                      # 1,000,000 messages in a temp SQLite store
    .venv/bin/python bench/console_search.py --messages 100000    # smaller
    .venv/bin/python bench/console_search.py --database var/bench.db --keep   # build once, rerun searches

Builds a SQLite store through the real migrations, fills it with the benchmark's message mix
(hl7_mix.py: ADT and ORU, synthetic data) spread over 30 days and 100,000 patients, with one
delivery per message and 1% of messages rejected, then times `simpul.engine.search.search_messages`
(what /console/messages and GET /api/v1/messages call) for each kind of search: the median of
five runs, cold caches excluded (one run first). The build uses one transaction per 20,000 rows
and synchronous=NORMAL (it is set-up, not the thing measured). Numbers are printed, never asserted.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hl7_mix import message  # noqa: E402

from simpul.engine.search import MessageQuery, search_messages  # noqa: E402
from simpul.store.database import open_database  # noqa: E402
from simpul.store.schema import deliveries, messages  # noqa: E402

PATIENTS = 100_000
DAYS = 30
BATCH = 20_000
RARE_TEXT = "RARE-NEEDLE-7Q4"


def build(url: str, count: int, rng: random.Random) -> float:
    db = open_database(url, sqlite_synchronous="NORMAL")
    started = time.perf_counter()
    now = time.time()
    rare_at = count // 3                     # one old message carries a unique text
    with db.connect() as connection:
        for start in range(0, count, BATCH):
            rows, sends = [], []
            for i in range(start, min(start + BATCH, count)):
                control_id = f"BENCH{i:08d}"
                raw = message(control_id, rng)
                mrn = f"MR{rng.randrange(PATIENTS):06d}"
                pid = raw.index(b"PID|1||") + 7
                raw = raw.replace(raw[pid:raw.index(b"^", pid)], mrn.encode())     # the mix has 2,000 patients
                if i == rare_at:
                    raw = raw.replace(b"Pratama", RARE_TEXT.encode(), 1)
                kind = "ORU^R01" if b"|ORU^R01" in raw[:150] else "ADT^A08" if b"|ADT^A08" in raw[:150] else "ADT^A01"
                rejected = rng.random() < 0.01
                rows.append({"id": i + 1, "received_at": now - DAYS * 86400 * (1 - i / count), "source": "mllp:2575",
                             "status": "rejected" if rejected else "routed", "sending_application": "SIMRS",
                             "sending_facility": "RSUD_BENCH", "receiving_application": "SIMPUL",
                             "receiving_facility": "RSUD_BENCH", "message_type": kind, "control_id": control_id,
                             "version_id": "2.5.1", "charset": "UNICODE UTF-8", "content_hash": "", "patient_id": mrn,
                             "visit_number": "", "placer_number": "", "filler_number": "", "accession_number": "",
                             "raw": raw, "ack": None, "ack_code": "AA", "error": None, "duplicates": 0})
                if not rejected:
                    sends.append({"message_id": i + 1, "channel": "adt", "destination": "fhir", "order_key": mrn,
                                  "status": "delivered", "attempts": 1, "created_at": now, "next_attempt_at": now,
                                  "payload": b"{}", "content_type": "application/fhir+json"})
            with connection.begin():
                connection.execute(messages.insert(), rows)
                connection.execute(deliveries.insert(), sends)
            print(f"\r  built {min(start + BATCH, count):,} / {count:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    db.dispose()
    return time.perf_counter() - started


def timed(db: sa.Engine, query: MessageQuery, runs: int = 5) -> tuple[float, int]:
    with db.connect().execution_options(simpul_read=True) as connection:
        found = search_messages(connection, query)          # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            found = search_messages(connection, query)
            times.append(time.perf_counter() - started)
    return statistics.median(times), len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--database", help="SQLite file to build (or reuse when it has messages)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="simpul-search-bench-"))
    path = Path(args.database) if args.database else folder / "bench.db"
    url = f"sqlite:///{path}"
    db = open_database(url)
    with db.connect() as connection:
        present = connection.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
    if present == 0:
        print(f"building a store of {args.messages:,} messages in {path} ...", file=sys.stderr)
        seconds = build(url, args.messages, random.Random(7))
        print(f"built in {seconds:.0f} s ({path.stat().st_size / 1e9:.2f} GB)", file=sys.stderr)
        present = args.messages
    now = time.time()
    with db.connect() as connection:
        sample = connection.execute(sa.select(messages.c.control_id, messages.c.patient_id)
                                    .where(messages.c.id == present // 2)).one()
    searches = [
        ("control id (MSH-10)", MessageQuery(control_id=sample.control_id)),
        ("patient id (PID-3)", MessageQuery(patient_id=sample.patient_id)),
        ("type ORU^R01, last hour", MessageQuery(message_type="ORU^R01", since=now - 3600)),
        ("type ADT^*, one day 10 days ago", MessageQuery(message_type="ADT^*", since=now - 11 * 86400,
                                                          until=now - 10 * 86400, limit=200)),
        ("status rejected (newest 200)", MessageQuery(status="rejected", limit=200)),
        ("newest 200, no filter", MessageQuery(limit=200)),
        ("text, common ('Penicillin', newest 200)", MessageQuery(text="Penicillin", limit=200)),
        ("text, rare, whole store", MessageQuery(text=RARE_TEXT, limit=200)),
        ("text, rare, within its day", MessageQuery(text=RARE_TEXT, since=now - DAYS * 86400 * (2 / 3) - 43200,
                                                    until=now - DAYS * 86400 * (2 / 3) + 43200, limit=200)),
    ]
    print(f"\nsearch on {present:,} messages (SQLite, median of 5 runs after a warm-up):")
    print(f"{'search':<42} {'ms':>9} {'found':>6}")
    for label, query in searches:
        seconds, found = timed(db, query)
        print(f"{label:<42} {seconds * 1000:>9.1f} {found:>6}")
    db.dispose()
    if not args.keep and not args.database:
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
