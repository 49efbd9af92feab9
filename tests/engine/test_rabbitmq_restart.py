"""Publishing to RabbitMQ while the broker restarts: nothing is lost.

A private RabbitMQ node (its own port and state folder, so the machine's broker is never touched)
is stopped and started again while the engine publishes a stream of emitted events to it. Every
publish waits for its confirm; one that fails is retried, so when the stream is over the queue
holds every event (a publish whose confirm was lost in the restart may be there twice, with the
same id: at-least-once, deduplicated by the consumer).
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from simpul.engine.events import emit_event

from tests.broker import PrivateBroker, drain
from tests.helpers import EngineHarness

EVENTS = 400


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_publishing_through_a_broker_restart_loses_nothing(tmp_path: Path, sqlite_url: str) -> None:
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() and not os.environ.get("CI"):
        pytest.skip("rabbitmq-server is not installed (scripts/test.sh installs it)")
    broker = PrivateBroker(tmp_path / "rabbitmq")
    await asyncio.to_thread(broker.start)
    harness = EngineHarness(tmp_path, sqlite_url)
    try:
        engine = await harness.start({"results.yaml": f"""\
name: results
source:
  events: {{types: [lab_result_received]}}
destinations:
  - label: emr
    order_by: none
    rabbitmq:
      url: {broker.url}
      exchange: emr.events
      queue: emr.results
      timeout: 2s
    retry: {{max_attempts: 1000, initial_delay: 200ms, max_delay: 1s}}
"""})
        assert engine.writer is not None
        writer = engine.writer

        async def emit_stream() -> None:
            for start in range(0, EVENTS, 20):
                def emit(connection, start=start):  # type: ignore[no-untyped-def]
                    for n in range(start, start + 20):
                        emit_event(connection, "lab_result_received", subject=f"Observation/{n}",
                                   data={"resourceType": "Observation", "status": "final", "id": f"o{n}",
                                         "code": {"text": "Hb"}})
                await writer.run(emit)
                await asyncio.sleep(0.4)

        stream = asyncio.create_task(emit_stream())
        await harness.wait_for(lambda: harness.sql(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] >= 60, timeout=30)
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.start)
        await stream
        await harness.wait_for(lambda: harness.sql(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] == EVENTS, timeout=120)

        emitted = {row[0] for row in harness.sql("SELECT control_id FROM messages")}
        published = [json.loads(message.body)["id"] for message in await drain("emr.results", url=broker.url)]
        assert len(emitted) == EVENTS
        assert set(published) == emitted                       # nothing lost
        retried = harness.sql("SELECT count(*) FROM deliveries WHERE attempts > 1")[0][0]
        assert retried > 0                                      # the restart did hit publishes
        assert harness.sql("SELECT count(*) FROM dead_letters")[0][0] == 0
        print(f"broker restart: {EVENTS} events, {retried} publishes retried, "
              f"{len(published) - len(set(published))} duplicates in the queue")
    finally:
        await harness.stop()
        await asyncio.to_thread(broker.stop)
