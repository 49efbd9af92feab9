"""kill -9 of a `simpul run` between storing RabbitMQ messages and acking them: each is stored once.

The engine reaches the broker through a TCP proxy that holds what the engine sends, so the
messages are committed to the store while their acks sit in the proxy; then the engine is killed.
The broker never got an ack, so it redelivers every message to the restarted engine, whose dedup
(refilled from the store) acks each without storing it again.
"""
from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from simpul.connectors.cloudevents import build_event

from tests.broker import connect_or_skip, depth, publish, remove, unique
from tests.fakes.tcp_proxy import TcpProxy
from tests.helpers import EngineProcess, file_destination_channel, free_port, store_rows, write_settings

EVENTS = 40


async def wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_kill_between_commit_and_ack_stores_each_message_once(tmp_path: Path) -> None:
    await (await connect_or_skip()).close()
    exchange, queue = unique("emr"), unique("in")
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    database_url = f"sqlite:///{tmp_path / 'simpul.db'}"
    settings = write_settings(tmp_path, database_url, http_port=free_port())
    channels = tmp_path / "channels"
    channels.mkdir()
    out = tmp_path / "out"
    (channels / "events.yaml").write_text(textwrap.dedent(f"""\
        name: emr-events
        source:
          rabbitmq:
            url: amqp://guest:guest@127.0.0.1:{proxy.port}/
            exchange: {exchange}
            queue: {queue}
            prefetch: 100
        mapping: passthrough
        destinations:
          - label: out
            order_by: none
            file: {{directory: {out}}}
        """))
    probe_port = free_port()       # EngineProcess knows the engine is up when this MLLP port answers
    (channels / "probe.yaml").write_text(file_destination_channel("probe", probe_port, tmp_path / "probe"))
    engine = EngineProcess(settings, probe_port, tmp_path / "engine.log")
    try:
        await asyncio.to_thread(engine.start)

        async def consuming() -> bool:
            try:
                return await depth(queue) == 0
            except Exception:  # noqa: BLE001 - the queue is not declared yet
                return False

        await wait_until(consuming)
        proxy.stall_upstream(True)          # from here the engine's acks never reach the broker
        ids = [f"evt-{n}" for n in range(EVENTS)]
        for event_id in ids:
            body = build_event("patient_admitted", id=event_id, source="emr/adt",
                               data={"resourceType": "Encounter", "status": "in-progress"})
            await publish(exchange, "patient_admitted", body)

        async def all_stored() -> bool:
            return store_rows(database_url, "SELECT count(*) FROM messages")[0][0] == EVENTS

        await wait_until(all_stored)
        await asyncio.to_thread(engine.kill)
        # Nothing was acked: the broker holds every message again for the next consumer.
        await wait_until(lambda: _equals(depth(queue), EVENTS), timeout=30)

        proxy.stall_upstream(False)
        await asyncio.to_thread(engine.start)
        await wait_until(lambda: _equals(depth(queue), 0), timeout=60)

        async def all_delivered() -> bool:
            return store_rows(database_url, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] \
                >= EVENTS

        await wait_until(all_delivered, timeout=60)
        stored = [row[0] for row in store_rows(database_url, "SELECT control_id FROM messages ORDER BY id")]
        assert sorted(stored) == sorted(ids)            # each exactly once
        assert len(list(out.iterdir())) == EVENTS       # and delivered once
    finally:
        await asyncio.to_thread(engine.stop)
        await proxy.stop()
        await remove(queues=[queue, queue + ".dead"], exchanges=[exchange, queue + ".dead"])


async def _equals(value, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await value == expected
