"""rabbitmq: business events over RabbitMQ (AMQP 0-9-1, aio-pika), in and out, as CloudEvents 1.0 JSON.

Features
    Source: consumes a durable queue (quorum by default) bound to a topic exchange, with manual
    acks and a prefetch window. Each message is committed to the store before it is acked, so a
    crash between the two redelivers it, and dedup (CloudEvents `source` + `id`; MSH-3/4/10 for
    HL7v2) stores it once. A body that cannot be read is stored as `rejected` and dead-lettered to
    the queue's dead-letter exchange (never requeued); a message that could not be stored (store
    down) goes back to the queue after `retry_delay`. Bodies: a CloudEvents 1.0 JSON event
    (structured mode; `data` a FHIR resource or Bundle, JSON, or HL7v2 text) or a raw HL7v2
    message. A message with `reply_to` gets the ingest's answer published there (the ACK for
    HL7v2, `{"outcome": "stored"|"duplicate"|"rejected"}` for an event).
    Destination: publishes persistent messages with publisher confirms and `mandatory`, so a
    send succeeds only once the broker has taken the message into a queue; an unroutable
    message, a nack, a timeout or a broker that is down is retryable (then a dead letter, like
    any destination). Each message is a CloudEvent: an event payload goes on as it is (its `type`
    re-stamped when the destination names one); any other payload (mapped FHIR, HL7v2) is wrapped
    with an id derived from the delivery, so a retry or replay carries the same id. The
    `idempotency-key` header is the same for every attempt and replay of one delivery.
Connection
    `url` (amqp://user:password@host:5672/vhost; put it in the environment: `url: ${RABBITMQ_URL}`).
Options
    Source: `exchange`, `queue`, `binding_keys`, `queue_type`, `prefetch`, `dead_letter_exchange`,
    `retry_delay`. Destination: `exchange`, `routing_key`, `type`, `queue` (declared and bound, so
    events wait for a consumer that has not started yet), `queue_type`, `timeout`.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field

from simpul.config_types import Duration, IngestOptions, StrictModel
from simpul.connectors.base import ConnectorSpec, Outgoing, Receive
from simpul.connectors.cloudevents import (
    CLOUDEVENTS_JSON, FHIR_JSON, HL7_V2, JSON, build_event, looks_like_event, outcome_of, valid_type,
)
from simpul.errors import ConnectorRejected, ConnectorUnavailable

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection,
    )

log = logging.getLogger("simpul.rabbitmq")

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
IDEMPOTENCY_HEADER = "idempotency-key"
ExchangeType = Literal["topic", "direct", "fanout", "headers"]
QueueType = Literal["quorum", "classic"]


def _aio_pika() -> Any:
    # aio-pika (with aiormq and pamqp) loads only when a channel uses RabbitMQ: the registry
    # imports every connector module to build the channel models (registry.py).
    import aio_pika
    # aiormq at DEBUG writes whole frames, message bodies (patient data) included: never below INFO.
    for name in ("aiormq", "aio_pika"):
        library = logging.getLogger(name)
        if library.level < logging.INFO:       # NOTSET (0) too: it would follow a DEBUG root
            library.setLevel(logging.INFO)
    return aio_pika


class _Common(StrictModel):
    url: str = Field(DEFAULT_URL, description="AMQP URL with credentials; use ${RABBITMQ_URL} to keep them out "
                                              "of the YAML. Never logged.",
                     examples=["${RABBITMQ_URL}"])
    exchange: str = Field(min_length=1, max_length=255, description="Exchange (declared durable if missing).",
                          examples=["emr.events"])
    exchange_type: ExchangeType = Field("topic", description="Type of the exchange when it is declared.")
    queue_type: QueueType = Field("quorum", description="x-queue-type of queues declared here: quorum "
                                                        "(replicated, the default) or classic.")


class RabbitMqSourceConfig(_Common, IngestOptions):
    """Consume a queue bound to an exchange; each message is stored before it is acked."""

    queue: str = Field(min_length=1, max_length=255, description="Queue to consume (declared durable, bound to "
                                                                 "the exchange by each binding key).",
                       examples=["simpul.emr-events"])
    binding_keys: list[str] = Field(default_factory=lambda: ["#"], min_length=1,
                                    description="Routing keys (topic patterns) the queue is bound with.",
                                    examples=[["lab_order_created", "patient_discharged", "invoice_generated"]])
    prefetch: int = Field(64, ge=1, le=65535, description="Unacked messages in flight at once (commits are "
                                                          "grouped over them).")
    dead_letter_exchange: str | None = Field(
        None, description="Where unreadable messages go (x-dead-letter-exchange of the queue; default "
                          "<queue>.dead, a fanout exchange with a queue of the same name).")
    retry_delay: Duration = Field(1.0, description="Wait before a message that could not be stored (store "
                                                   "down) goes back to the queue.")
    connect_timeout: Duration = Field(10.0, description="Connecting to the broker gives up after this long "
                                                        "(and is tried again in the background).")

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_exchange or f"{self.queue}.dead"


class RabbitMqDestinationConfig(_Common):
    """Publish each delivery as a persistent CloudEvent, confirmed by the broker."""

    routing_key: str | None = Field(None, max_length=255, description="Routing key (default: the event's type).",
                                    examples=["critical_result"])
    type: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,57}$",
                             description="CloudEvents type of what is published (default: the event's own; "
                                         "the routing key for a payload that is not an event).",
                             examples=["lab_result_received"])
    source: str = Field("simpul", min_length=1, max_length=180,
                        description="CloudEvents source of the events this destination builds.")
    queue: str | None = Field(None, max_length=255, description="Declare this queue and bind it with the "
                                                                "routing key, so events wait for a consumer "
                                                                "that is not there yet.",
                              examples=["emr.notifications"])
    timeout: Duration = Field(10.0, description="Connect and publish-confirm deadline.")


def _wrapped_id(outgoing: Outgoing) -> str:
    """The same id for every attempt and replay of one delivery (Outgoing.delivery_id is the
    first delivery of a replay chain), so consumers that dedup by source + id see it once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"simpul:{outgoing.channel}/{outgoing.destination}/"
                                              f"{outgoing.delivery_id}"))


def event_for(config: RabbitMqDestinationConfig, outgoing: Outgoing) -> tuple[bytes, str, str]:
    """(body, CloudEvents id, type) of what is published; ConnectorRejected for a payload that
    can never be one (an envelope that is not JSON, FHIR that is not JSON)."""
    if outgoing.content_type == CLOUDEVENTS_JSON or looks_like_event(outgoing.payload) and \
            outgoing.content_type not in (FHIR_JSON, JSON):
        try:
            document = orjson.loads(outgoing.payload)
            event_id, event_type = str(document["id"]), str(document["type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ConnectorRejected(f"delivery {outgoing.delivery_id}: the payload is not a CloudEvents "
                                    "JSON event") from None
        if config.type is None or config.type == event_type:
            return outgoing.payload, event_id, event_type
        # A new type is a new event: a fresh, stable id (source + id must not name two events).
        document["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{document.get('source')}/{event_id}/{config.type}"))
        document["type"] = config.type
        return orjson.dumps(document), document["id"], config.type
    event_type = config.type or config.routing_key or ""
    if not valid_type(event_type):
        raise ConnectorRejected(f"delivery {outgoing.delivery_id}: set `type` (or `routing_key`) on the rabbitmq "
                                "destination to publish a payload that is not an event")
    data: Any
    if outgoing.content_type in (FHIR_JSON, JSON):
        try:
            data = orjson.loads(outgoing.payload)
        except orjson.JSONDecodeError:
            raise ConnectorRejected(f"delivery {outgoing.delivery_id}: the payload is not JSON") from None
    else:
        try:
            data = outgoing.payload.decode("utf-8")
        except UnicodeDecodeError:
            data = outgoing.payload          # data_base64
    event_id = _wrapped_id(outgoing)
    body = build_event(event_type, data=data, source=config.source, id=event_id,
                       datacontenttype=outgoing.content_type if outgoing.content_type else None)
    return body, event_id, event_type


def _unavailable(what: str, exc: BaseException) -> ConnectorUnavailable:
    # The exception text of aiormq can carry the URL (with its password): name the class only.
    return ConnectorUnavailable(f"RabbitMQ {what} failed ({type(exc).__name__})")


class RabbitMqDestination:
    def __init__(self, config: RabbitMqDestinationConfig) -> None:
        self.config = config
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    def _ready(self) -> bool:
        return (self._exchange is not None and self._channel is not None and not self._channel.is_closed
                and self._connection is not None and not self._connection.is_closed)

    async def connect(self) -> None:
        async with self._lock:
            if self._ready():
                return
            await self._drop()
            try:
                await asyncio.wait_for(self._open(), self.config.timeout)
            except Exception as exc:
                await self._drop()
                raise _unavailable("connect", exc) from exc

    async def _open(self) -> None:
        aio_pika = _aio_pika()
        self._connection = await aio_pika.connect(self.config.url, timeout=self.config.timeout)
        # on_return_raises: a message no queue takes (mandatory) fails its publish, never vanishes.
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._channel.declare_exchange(
            self.config.exchange, aio_pika.ExchangeType(self.config.exchange_type), durable=True)
        if self.config.queue:
            queue = await self._channel.declare_queue(
                self.config.queue, durable=True, arguments={"x-queue-type": self.config.queue_type})
            await queue.bind(self._exchange, self.config.routing_key or self.config.type or "#")

    async def _drop(self) -> None:
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is not None and not connection.is_closed:
            try:
                # A broker that stopped answering would hold close() too: bounded like a send.
                await asyncio.wait_for(connection.close(), min(2.0, self.config.timeout))
            except Exception as exc:  # noqa: BLE001 - a connection that will not close cleanly is dropped anyway
                log.debug("closing the RabbitMQ connection failed", extra={"error_class": type(exc).__name__})

    async def send(self, outgoing: Outgoing) -> str:
        body, event_id, event_type = event_for(self.config, outgoing)
        routing_key = self.config.routing_key or event_type
        await self.connect()
        aio_pika = _aio_pika()
        message = aio_pika.Message(
            body, content_type=CLOUDEVENTS_JSON, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event_id, type=event_type, app_id="simpul",
            headers={IDEMPOTENCY_HEADER: f"{outgoing.channel}/{outgoing.destination}/{outgoing.delivery_id}",
                     "simpul-control-id": outgoing.control_id})
        exchange = self._exchange
        assert exchange is not None
        try:
            await asyncio.wait_for(exchange.publish(message, routing_key, mandatory=True,
                                                    timeout=self.config.timeout), self.config.timeout)
        except aio_pika.exceptions.DeliveryError as exc:
            # Returned (no queue bound for the key) or nacked by the broker: nothing was taken.
            raise ConnectorUnavailable(f"RabbitMQ did not take delivery {outgoing.delivery_id} "
                                       f"(routing key {routing_key}: no queue bound, or nacked)") from exc
        except Exception as exc:
            # Timeout, connection or channel closed: the confirm never came, so the broker may or may
            # not have the message; the retry carries the same id and idempotency key.
            async with self._lock:
                await self._drop()
            raise _unavailable(f"publish of delivery {outgoing.delivery_id}", exc) from exc
        return f"published {event_type} to {self.config.exchange} ({routing_key})"

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


class RabbitMqSource:
    """Consumes one queue; `receive` (the engine's EventIngest) commits before the ack."""

    port = None

    def __init__(self, config: RabbitMqSourceConfig, receive: Receive) -> None:
        self.config = config
        self.receive = receive
        self._connection: AbstractRobustConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._connection is not None or self._connecting is not None:
            return
        try:
            await asyncio.wait_for(self._open(), self.config.connect_timeout)
        except Exception as exc:  # noqa: BLE001 - a broker that is down must not stop the engine starting
            await self._drop()
            log.error("RabbitMQ source cannot connect yet; retrying in the background",
                      extra={"queue": self.config.queue, "error_class": type(exc).__name__})
            self._connecting = asyncio.create_task(self._keep_connecting(), name=f"rabbitmq:{self.config.queue}")

    async def _keep_connecting(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(self._open(), self.config.connect_timeout)
            except Exception as exc:  # noqa: BLE001 - keep trying until close()
                await self._drop()
                log.warning("RabbitMQ source still cannot connect", extra={"queue": self.config.queue,
                                                                           "error_class": type(exc).__name__})
                delay = min(delay * 2, 30.0)
                continue
            log.info("RabbitMQ source connected", extra={"queue": self.config.queue})
            self._connecting = None
            return

    async def _open(self) -> None:
        aio_pika = _aio_pika()
        config = self.config
        # connect_robust: after a broker restart it reconnects, declares the topology again and
        # resumes consuming; messages unacked at the break are redelivered (and deduplicated).
        self._connection = connection = await aio_pika.connect_robust(config.url, timeout=config.connect_timeout)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=config.prefetch)
        exchange = await channel.declare_exchange(config.exchange, aio_pika.ExchangeType(config.exchange_type),
                                                  durable=True)
        dead = await channel.declare_exchange(config.dead_letters, aio_pika.ExchangeType.FANOUT, durable=True)
        parked = await channel.declare_queue(config.dead_letters, durable=True,
                                             arguments={"x-queue-type": config.queue_type})
        await parked.bind(dead)
        queue = await channel.declare_queue(config.queue, durable=True, arguments={
            "x-queue-type": config.queue_type, "x-dead-letter-exchange": config.dead_letters})
        for key in config.binding_keys:
            await queue.bind(exchange, key)
        await queue.consume(self._on_message)
        log.info("consuming", extra={"queue": config.queue})

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handling.add(task)
        try:
            await self._handle(message)
        finally:
            if task is not None:
                self._handling.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            reply = await self.receive(message.body)
        except Exception as exc:  # noqa: BLE001 - nothing was stored: the broker keeps the message
            log.error("message not stored; it goes back to the queue",
                      extra={"queue": self.config.queue, "error_class": type(exc).__name__})
            await asyncio.sleep(self.config.retry_delay)
            await self._settle(message.nack(requeue=True))
            return
        if message.reply_to and reply is not None and message.channel is not None:
            await self._settle(self._reply(message, reply))
        if outcome_of(reply) == "rejected":
            # Stored as rejected for staff; the body goes to the dead-letter exchange, never back.
            await self._settle(message.reject(requeue=False))
        else:
            await self._settle(message.ack())

    async def _reply(self, message: AbstractIncomingMessage, reply: bytes) -> None:
        aio_pika = _aio_pika()
        content_type = JSON if looks_like_event(reply) else HL7_V2
        await message.channel.basic_publish(
            reply, routing_key=message.reply_to or "",
            properties=aio_pika.Message(b"", correlation_id=message.correlation_id,
                                        content_type=content_type).properties)

    async def _settle(self, action: Any) -> None:
        try:
            await action
        except Exception as exc:  # noqa: BLE001 - the channel broke: the broker redelivers, dedup answers
            log.warning("could not settle a message with RabbitMQ; it will be redelivered",
                        extra={"queue": self.config.queue, "error_class": type(exc).__name__})

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), 5.0)
            except Exception as exc:  # noqa: BLE001 - closing a broken connection
                log.debug("closing the RabbitMQ connection failed", extra={"error_class": type(exc).__name__})

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
            self._connecting = None
        await self._drop()
        # Handlers still running (waiting for a commit, or to hand back a message): their messages
        # are unacked, so the broker redelivers them to the next consumer, and dedup answers.
        for task in list(self._handling):
            task.cancel()
        if self._handling:
            await asyncio.gather(*self._handling, return_exceptions=True)


CONNECTOR = ConnectorSpec(
    name="rabbitmq",
    source=RabbitMqSourceConfig, create_source=RabbitMqSource, source_takes="events",
    source_description="Consume CloudEvents (FHIR data) or HL7v2 from a RabbitMQ queue; stored before acked.",
    destination=RabbitMqDestinationConfig, create_destination=RabbitMqDestination, default_payload="raw",
    destination_description="Publish each delivery as a persistent, confirmed CloudEvent to a RabbitMQ exchange.")
