"""Order tracking benchmark: what `orders:` costs the routing stage.

    .venv/bin/python bench/orders.py [--results 2000]

N ORU^R01 results (each for an order nobody placed: the costliest case, a new order row plus its
steps and a lab_result_received event) are stored first; then an engine (SQLite, synchronous FULL)
starts with one channel that passes them raw to a file destination, once without and once with
`orders: {kind: lab}`. Printed: how long until every result was routed, both ways.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simpul.store.database import open_database  # noqa: E402
from simpul.store.migrate import upgrade_to_head  # noqa: E402
from simpul.store.rows import message_row  # noqa: E402
from simpul.store.schema import messages  # noqa: E402
from simpul.store.status import MessageStatus  # noqa: E402
from simpul.v2 import extract_business_keys, read_body, read_header  # noqa: E402
from tests.fakes.fake_lis import order_result  # noqa: E402
from tests.helpers import EngineHarness, free_port  # noqa: E402


def store_results(url: str, source: str, count: int) -> None:
    db = open_database(url)
    upgrade_to_head(db)
    rows = []
    for n in range(count):
        raw = order_result(f"B{n}", placer=f"PLB{n}", filler=f"FLB{n}")
        header = read_header(raw)
        body = read_body(raw, header)
        keys = extract_business_keys(body.lines, header.field_separator, header.component_separator,
                                     header.repetition_separator)
        rows.append(message_row(source, MessageStatus.RECEIVED, time.time(), raw, None, "AA", charset="utf-8",
                                content_hash=hashlib.md5(raw).hexdigest(), header=header, keys=keys))
    with db.begin() as connection:
        connection.execute(messages.insert(), rows)
    db.dispose()


async def route(count: int, tracked: bool) -> float:
    folder = Path(tempfile.mkdtemp(prefix="simpul-bench-orders-"))
    try:
        url, port = f"sqlite:///{folder / 'store.db'}", free_port()
        store_results(url, f"mllp:127.0.0.1:{port}", count)
        orders = "orders: {kind: lab}\n" if tracked else ""
        channel = (f"name: results\nsource:\n  mllp: {{host: 127.0.0.1, port: {port}}}\n{orders}"
                   f"destinations:\n  - label: out\n    payload: raw\n    order_by: none\n"
                   f"    file: {{directory: {folder / 'out'}}}\n")
        harness = EngineHarness(folder, url)
        started = time.perf_counter()
        await harness.start({"results.yaml": channel})
        try:
            await harness.wait_for(lambda: harness.sql(
                "SELECT count(*) FROM messages WHERE status = 'routed' AND source LIKE 'mllp:%'")[0][0] == count,
                timeout=600)
            return time.perf_counter() - started
        finally:
            await harness.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=2000)
    count = parser.parse_args().results
    for tracked in (False, True):
        took = await route(count, tracked)
        print(f"{'with' if tracked else 'without'} orders: {count} results routed in {took:.2f} s "
              f"({count / took:.0f}/s)")


if __name__ == "__main__":
    asyncio.run(main())
