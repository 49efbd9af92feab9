"""mllp: receive HL7v2 over MLLP (source), or send each delivery to a receiver and read its ACK.

Features
    As a source: the engine's MLLP listener (commit, then ACK; dedup; limits); channels naming
    the same host:port share one listener.
    As a destination: one persistent connection, reopened after any error; MSA-2 must echo the
    MSH-10 sent.
Connection
    Source: host, port, optional TLS (server certificate, optional client certificates).
    Destination: host, port, optional TLS (ca_file to verify the receiver; cert_file/key_file
    for a client certificate).
Options
    Source: listener limits (frame size, timeouts, connections), charsets, dedup window.
    Destination: connect_timeout, response_timeout.
Errors
    AA/CA: delivered. AE/CE, timeouts, refused or dropped connections, an ACK for another
    message: retryable. AR/CR: final (the ACK is kept as the response).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration, IngestOptions
from simpul.connectors.base import ConnectorSpec, Outgoing, Receive
from simpul.errors import (
    AckMismatch, AckUnreadable, ApplicationRejectAck, CommitRejectAck, ConnectorRejected,
    ConnectorUnavailable, MllpError, NegativeAck,
)
from simpul.mllp.listener import ListenerEvents, ListenerSettings, MllpServer, start_mllp_server
from simpul.mllp.sender import MllpConnection, open_mllp_connection
from simpul.mllp.tls import TlsSettings, client_ssl_context, server_ssl_context

_LISTENER_FIELDS = set(ListenerSettings.model_fields)


class MllpSource(ListenerSettings, IngestOptions):
    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 for every interface.")
    port: int = Field(ge=0, le=65535, description="TCP port (0 picks a free one, for tests).", examples=[2577])
    tls: TlsSettings | None = Field(None, description="Serve MLLP over TLS 1.2+ (1.3 preferred).")


class MllpSourceConnector:
    """An MLLP listener that hands every frame to `receive` and answers with what it returns."""

    def __init__(self, config: MllpSource, receive: Receive, *, events: ListenerEvents | None = None) -> None:
        self.config = config
        self.receive = receive
        self.events = events
        self._server: MllpServer | None = None

    @property
    def port(self) -> int:
        """The bound port (the one the listener chose when the config says 0); 0 when not started."""
        return self._server.port if self._server is not None else 0

    async def start(self) -> None:
        await self.close()
        ssl_context = server_ssl_context(self.config.tls) if self.config.tls else None
        self._server = await start_mllp_server(
            self.receive, host=self.config.host, port=self.config.port,
            settings=ListenerSettings(**self.config.model_dump(include=_LISTENER_FIELDS)), ssl=ssl_context,
            events=self.events)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.close()


class MllpDestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="Receiver host name or address.", examples=["lis.hospital.local"])
    port: int = Field(ge=1, le=65535, description="Receiver MLLP port.", examples=[2575])
    connect_timeout: Duration = Field(10.0, description="Deadline to open the TCP (and TLS) connection.")
    response_timeout: Duration = Field(30.0, description="Deadline for the ACK after a message is sent.")
    tls: bool = Field(False, description="Use TLS (1.2+).")
    ca_file: str | None = Field(None, description="CA that signed the receiver's certificate.")
    cert_file: str | None = Field(None, description="Client certificate, when the receiver requires one.")
    key_file: str | None = Field(None, description="Key of the client certificate.")


class MllpDestination:
    def __init__(self, config: MllpDestinationConfig) -> None:
        self.config = config
        self._connection: MllpConnection | None = None

    async def connect(self) -> None:
        await self._drop()      # a second connect() replaces the connection instead of leaking it
        ssl_context = None
        if self.config.tls or self.config.ca_file:
            ssl_context = client_ssl_context(ca=self.config.ca_file, cert=self.config.cert_file,
                                             key=self.config.key_file)
        try:
            self._connection = await open_mllp_connection(
                self.config.host, self.config.port, connect_timeout=self.config.connect_timeout,
                response_timeout=self.config.response_timeout, ssl=ssl_context)
        except (MllpError, OSError) as exc:
            raise ConnectorUnavailable(f"cannot connect to {self.config.host}:{self.config.port} "
                                       f"({type(exc).__name__})") from exc

    async def send(self, outgoing: Outgoing) -> str:
        if self._connection is None or self._connection.closed:
            await self.connect()
        assert self._connection is not None
        try:
            ack = await self._connection.send(outgoing.payload)
        except (ApplicationRejectAck, CommitRejectAck) as exc:
            raise ConnectorRejected(f"receiver answered {exc.ack_code}", response=_text(exc.ack)) from exc
        except NegativeAck as exc:
            await self._drop()
            raise ConnectorUnavailable(f"receiver answered {exc.ack_code}", response=_text(exc.ack)) from exc
        except (AckMismatch, AckUnreadable) as exc:
            await self._drop()
            raise ConnectorUnavailable(f"unusable ACK ({type(exc).__name__})") from exc
        except (MllpError, OSError) as exc:
            await self._drop()
            raise ConnectorUnavailable(f"MLLP transport failed ({type(exc).__name__})") from exc
        return _text(ack)

    async def _drop(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.close()
            except (MllpError, OSError):
                pass
            self._connection = None

    async def close(self) -> None:
        await self._drop()


def _text(ack: bytes) -> str:
    return ack.decode("latin-1").replace("\r", "\n").strip()


CONNECTOR = ConnectorSpec(
    name="mllp", source=MllpSource, create_source=MllpSourceConnector,
    source_description="Receive HL7v2 over MLLP.",
    destination=MllpDestinationConfig, create_destination=MllpDestination,
    destination_description="Send HL7v2 over MLLP and check the ACK.",
    # an MLLP receiver expects HL7v2, so the original message goes unless the channel says otherwise
    default_payload="raw")
