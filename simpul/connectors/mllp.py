"""mllp: send each delivery to an HL7v2 receiver over MLLP and read its ACK.

Features
    One persistent connection, reopened after any error; MSA-2 must echo the MSH-10 sent.
Connection
    host, port, optional TLS (ca_file to verify the receiver; cert_file/key_file for a client certificate).
Options
    connect_timeout, response_timeout.
Errors
    AA/CA: delivered. AE/CE, timeouts, refused or dropped connections, an ACK for another
    message: retryable. AR/CR: final (the ACK is kept as the response).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simpul.connectors.base import Outgoing
from simpul.engine.config.durations import Duration
from simpul.errors import (
    AckMismatch, AckUnreadable, ApplicationRejectAck, CommitRejectAck, ConnectorRejected,
    ConnectorUnavailable, MllpError, NegativeAck,
)


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
        self._connection: Any = None

    async def connect(self) -> None:
        from simpul.mllp.sender import open_mllp_connection
        from simpul.mllp.tls import client_ssl_context

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
