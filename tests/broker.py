"""RabbitMQ in tests: the machine's broker (127.0.0.1:5672, started by scripts/test.sh where it is
missing), small direct helpers over aio-pika, and a private node on its own port for tests that
stop and start the broker (scripts/services.sh, state under the test's tmp_path)."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from tests.helpers import REPO_ROOT, free_port

BROKER_URL = os.environ.get("SIMPUL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def unique(prefix: str) -> str:
    return f"simpul.test.{prefix}.{uuid.uuid4().hex[:8]}"


async def connect_or_skip(url: str = BROKER_URL) -> aio_pika.abc.AbstractConnection:
    try:
        return await aio_pika.connect(url, timeout=5)
    except Exception as exc:  # noqa: BLE001 - report why, as the PostgreSQL fixture does
        if os.environ.get("CI"):
            raise
        pytest.skip(f"RabbitMQ not reachable ({type(exc).__name__}); scripts/test.sh starts it")


async def publish(exchange: str, routing_key: str, body: bytes, *, url: str = BROKER_URL, **properties: Any) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        await target.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties),
                             routing_key=routing_key)
    finally:
        await connection.close()


async def drain(queue: str, *, url: str = BROKER_URL) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message waiting in `queue`, taken off it."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.get_queue(queue)
        taken = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
        return taken
    finally:
        await connection.close()


async def depth(queue: str, *, url: str = BROKER_URL) -> int:
    """Messages ready in `queue` (not counting those a consumer holds unacked)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def remove(*, queues: list[str] = [], exchanges: list[str] = [], url: str = BROKER_URL) -> None:  # noqa: B006
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        for name in exchanges:
            await channel.exchange_delete(name)
    finally:
        await connection.close()


class PrivateBroker:
    """A RabbitMQ node of this test's own on a free port (scripts/services.sh; about 4 s to start).
    Its state folder stays between stop and start, so durable queues and persistent messages survive
    a restart as they do on a real server."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "SIMPUL_AMQP_PORT": str(self.port), "SIMPUL_SERVICES_DIR": str(folder),
                    "SIMPUL_RABBITMQ_DIST_PORT": str(free_port())}
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _services(self, action: str) -> None:
        done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "services.sh"), action, "rabbitmq"],
                              env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"services.sh {action} rabbitmq failed: {done.stderr[-2000:]}")

    def start(self) -> None:
        self._services("start")

    def stop(self) -> None:
        self._services("stop")
