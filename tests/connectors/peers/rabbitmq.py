"""The RabbitMQ destination's peer: the real broker (127.0.0.1:5672) behind a TCP proxy, and a queue
read over a separate, direct connection. The RabbitMQ source's sender: a publisher with reply_to.

Down = the proxy closed (connections cut); stalled = the proxy holds every byte; retryable = the
peer's queue unbound, so the publish is unroutable (returned); RabbitMQ has no final answer.
"""
from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Literal, TypeVar

import aio_pika
import orjson

from tests.connectors.conformance import Peer, Sender
from tests.fakes.tcp_proxy import TcpProxy

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
T = TypeVar("T")


def event_data(body: bytes) -> bytes:
    """The payload a published CloudEvent carries (what the connector was given to send)."""
    event = orjson.loads(body)
    if "data_base64" in event:
        return base64.b64decode(event["data_base64"])
    data = event["data"]
    return data.encode() if isinstance(data, str) else orjson.dumps(data)


class BrokerSide:
    """A direct connection to the broker in a thread of its own, so `received()` (synchronous,
    called from the test's event loop) can read the queue without blocking that loop's work."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.channel: Any = None

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def open(self) -> None:
        self.connection = await aio_pika.connect(BROKER_URL)
        self.channel = await self.connection.channel()

    async def close(self) -> None:
        await self.connection.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class RabbitMqPeer(Peer):
    connector = "rabbitmq"
    secret = "guest:guest"
    final_errors = ("RabbitMQ never refuses a message for good: unroutable, nacked or a full queue may all "
                    "succeed later, so every broker answer is retryable (only a payload that can never be a "
                    "CloudEvent is final, before anything is sent)")

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.proxy = TcpProxy("127.0.0.1", 5672)
        self.name = f"simpul.conformance.{uuid.uuid4().hex[:10]}"
        self.routing_key = "conformance.out"
        self.broker: BrokerSide | None = None
        self._taken: list[bytes] = []

    async def start(self) -> None:
        await self.proxy.start()
        if self.broker is None:
            self.broker = BrokerSide()
            self.broker.run(self.broker.open())
            self.broker.run(self._declare())

    async def _declare(self) -> None:
        assert self.broker is not None
        channel = self.broker.channel
        self.exchange = await channel.declare_exchange(self.name, aio_pika.ExchangeType.TOPIC, durable=True,
                                                       auto_delete=False)
        self.queue = await channel.declare_queue(self.name, durable=True, arguments={"x-queue-type": "quorum"})
        await self.queue.bind(self.exchange, self.routing_key)

    async def stop(self) -> None:
        await self.proxy.stop()

    async def _cleanup(self) -> None:
        await self.queue.delete(if_unused=False, if_empty=False)
        await self.exchange.delete()

    def finish(self) -> None:
        if self.broker is not None:
            self.broker.run(self._cleanup())
            self.broker.run(self.broker.close())
            self.broker.stop()
            self.broker = None

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"url": f"amqp://guest:guest@127.0.0.1:{self.proxy.port}/", "exchange": self.name,
                "routing_key": self.routing_key, "timeout": timeout}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        assert outcome == "retryable" and self.broker is not None
        self.broker.run(self.queue.unbind(self.exchange, self.routing_key))

    async def heal(self) -> None:
        assert self.broker is not None
        self.broker.run(self.queue.bind(self.exchange, self.routing_key))

    def stall(self, on: bool) -> None:
        self.proxy.stall(on)

    async def _drain(self) -> list[bytes]:
        bodies = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            bodies.append(message.body)
        return bodies

    def received(self) -> list[bytes]:
        assert self.broker is not None
        self._taken += [event_data(body) for body in self.broker.run(self._drain())]
        return list(self._taken)


PEER = RabbitMqPeer


class RabbitMqSender(Sender):
    """Publishes to the source's exchange with reply_to and waits for the ingest's answer."""

    connector = "rabbitmq"

    def __init__(self) -> None:
        self.name = f"simpul.conformance.src.{uuid.uuid4().hex[:10]}"

    def config(self) -> dict[str, Any]:
        # retry_delay: a message whose receive failed stays unacked for the rest of the test, so the
        # failing-receive check sees exactly the two deliveries it sent.
        return {"url": BROKER_URL, "exchange": self.name, "queue": self.name, "binding_keys": ["conformance"],
                "retry_delay": "120s", "queue_type": "classic"}

    async def send(self, source: Any, raw: bytes, *, timeout: float) -> bytes | None:
        connection = await aio_pika.connect(BROKER_URL)
        try:
            channel = await connection.channel(publisher_confirms=True)
            replies = await channel.declare_queue(exclusive=True, auto_delete=True)
            correlation = uuid.uuid4().hex
            exchange = await channel.get_exchange(self.name)
            await exchange.publish(aio_pika.Message(raw, reply_to=replies.name, correlation_id=correlation),
                                   routing_key="conformance")
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                message = await replies.get(no_ack=True, fail=False)
                if message is not None and message.correlation_id == correlation:
                    return bytes(message.body)
                await asyncio.sleep(0.02)
            return None
        finally:
            await connection.close()

    async def aclose(self) -> None:
        connection = await aio_pika.connect(BROKER_URL)
        try:
            channel = await connection.channel()
            for name in (self.name, f"{self.name}.dead"):
                await channel.queue_delete(name)
            for name in (self.name, f"{self.name}.dead"):
                await channel.exchange_delete(name)
        finally:
            await connection.close()


SENDER = RabbitMqSender
