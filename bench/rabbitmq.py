"""RabbitMQ events benchmark: consume -> commit -> re-publish with confirms, one engine in process.

    .venv/bin/python bench/rabbitmq.py [--events 3000] [--url amqp://guest:guest@127.0.0.1:5672/]

N CloudEvents (FHIR Observation data, ~300 bytes) are published to a fresh quorum queue first;
then an engine (SQLite, synchronous FULL, listeners in the engine process) starts with one
channel: rabbitmq source (prefetch 256) -> passthrough -> rabbitmq destination (publisher
confirms, persistent, 64 in flight). Printed: how long until every event was stored (consume +
commit + ack) and until every one was re-published and confirmed. The queues and exchanges are
removed afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simpul.connectors.cloudevents import build_event  # noqa: E402
from tests.helpers import EngineHarness  # noqa: E402


async def run(events: int, url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    exchange, queue, out = f"simpul.bench.{tag}", f"simpul.bench.in.{tag}", f"simpul.bench.out.{tag}"
    folder = Path(tempfile.mkdtemp(prefix="simpul-bench-"))
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    target = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(f"{queue}.dead", aio_pika.ExchangeType.FANOUT, durable=True)
    declared = await channel.declare_queue(queue, durable=True, arguments={
        "x-queue-type": "quorum", "x-dead-letter-exchange": f"{queue}.dead"})
    await declared.bind(target, "#")
    bodies = [build_event("lab_result_received", id=f"bench-{n}", source="bench", data={
        "resourceType": "Observation", "status": "final", "code": {"text": "Hb"},
        "subject": {"identifier": {"value": f"MR{n}"}}}) for n in range(events)]
    started = time.monotonic()
    for first in range(0, events, 500):
        await asyncio.gather(*(target.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                              routing_key="lab_result_received")
                               for body in bodies[first:first + 500]))
    print(f"published {events} events in {time.monotonic() - started:.2f} s (before the engine starts)")
    harness = EngineHarness(folder, f"sqlite:///{folder / 'simpul.db'}")
    try:
        await harness.start({"bench.yaml": f"""\
name: bench
source:
  rabbitmq: {{url: "{url}", exchange: {exchange}, queue: {queue}, prefetch: 256}}
mapping: passthrough
destinations:
  - label: out
    order_by: none
    max_in_flight: 64
    rabbitmq: {{url: "{url}", exchange: {exchange}.out, routing_key: results, queue: {out}}}
"""}, poll_interval=0.01)
        began = time.monotonic()
        while harness.sql("SELECT count(*) FROM messages")[0][0] < events:
            await asyncio.sleep(0.02)
        stored = time.monotonic() - began
        while harness.sql("SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] < events:
            await asyncio.sleep(0.02)
        published = time.monotonic() - began
        print(f"stored (consumed, committed, acked): {stored:.2f} s = {events / stored:.0f} events/s")
        print(f"re-published with confirms:          {published:.2f} s = {events / published:.0f} events/s end to end")
    finally:
        await harness.stop()
        for name in (queue, f"{queue}.dead", out):
            await channel.queue_delete(name)
        for name in (exchange, f"{queue}.dead", f"{exchange}.out"):
            await channel.exchange_delete(name)
        await connection.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.events, arguments.url))


if __name__ == "__main__":
    main()
