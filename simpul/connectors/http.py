"""http: receive HL7v2 over HTTP, one message per POST, its ACK as the response body.

Features
    The same ingest as MLLP behind it (commit, then ACK; dedup; AR for unreadable messages).
    Status codes let a client act without reading the ACK: 200 AA/CA, 400 AR/CR (do not resend
    unchanged), 503 AE/CE (resend later), 204 when MSH-15 asked for no accept ACK.
Connection
    host, port, path; channels may share one port (each with its own path) or one path (their
    filters split the traffic).
Options
    max_bytes (413 above it), charsets, dedup window.
"""
from __future__ import annotations

from pydantic import Field

from simpul.config_types import IngestOptions
from simpul.connectors.base import ConnectorSpec


class HttpSource(IngestOptions):
    """HL7v2 over HTTP: POST one message as the request body; the ACK is the response body."""

    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 for every interface.")
    port: int = Field(ge=0, le=65535, description="TCP port; channels may share one (each with its own path).",
                      examples=[8090])
    path: str = Field("/hl7", pattern=r"^/[A-Za-z0-9/_.-]*$", description="URL path that takes the POSTs.",
                      examples=["/hl7/lab"])
    max_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest accepted request body (413 above).")


CONNECTOR = ConnectorSpec(
    name="http", source=HttpSource,
    source_description="Receive HL7v2 over HTTP POST (the ACK is the response).")
