"""HL7v2 over HTTP: POST one message as the body, get its ACK as the response body.

The same Ingest as MLLP runs behind it (commit, then ACK; dedup; AR for unreadable
messages), so the guarantees are the same. One server per host:port; each channel source is a
path on it, and several channels may share one path (their filters split the traffic).

Status codes let HTTP clients act without parsing the ACK: 200 AA/CA, 400 AR/CR (do not
resend unchanged), 503 AE/CE (resend later), 204 when MSH-15 asked for no accept ACK. A body
that is not a message at all gets an RFC 9457 problem document: 400 empty, 413 too large.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any

import orjson
import uvicorn

from simpul.engine.ingest import Ingest
from simpul.errors import AckUnreadable, problem_document
from simpul.mllp.ack import read_ack

log = logging.getLogger("simpul.http_source")

HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"
_STATUS = {"AA": 200, "CA": 200, "AR": 400, "CR": 400, "AE": 503, "CE": 503}


class HttpSourceServer:
    """One HTTP server on one host:port; `routes` maps a path to its Ingest and body limit."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self.routes: dict[str, tuple[Ingest, int]] = {}
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(self._app, host=self.host, port=self.requested_port, log_config=None,
                                access_log=False, lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None
        self._task = asyncio.create_task(self._server.serve(), name=f"http-source:{self.host}:{self.requested_port}")
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not self._server.started:
            await self.close()
            raise OSError(errno.EADDRINUSE, f"cannot listen for HL7 over HTTP on {self.host}:{self.requested_port}")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._server = self._task = None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        route = self.routes.get(scope["path"])
        if route is None:
            await _problem(send, 404, "No HL7 source at this path")
            return
        if scope["method"] != "POST":
            await _problem(send, 405, "POST one HL7v2 message as the request body", allow="POST")
            return
        ingest, limit = route
        body = bytearray()
        while True:
            event = await receive()
            body += event.get("body", b"")
            if len(body) > limit:
                await _problem(send, 413, f"The message exceeds {limit} bytes")
                return
            if not event.get("more_body"):
                break
        if not body.strip():
            await _problem(send, 400, "The request body is empty: POST one HL7v2 message")
            return
        ack = await ingest.handle(bytes(body))
        if ack is None:
            await respond(send, 204, b"", HL7_MEDIA_TYPE)
            return
        code = _msa_code(ack)
        await respond(send, _STATUS.get(code, 200), ack, HL7_MEDIA_TYPE)


def _msa_code(ack: bytes) -> str:
    try:
        return read_ack(ack)[0]
    except AckUnreadable:
        return ""


async def _problem(send: Any, status: int, title: str, **headers: str) -> None:
    body = orjson.dumps(problem_document(status, title))
    await respond(send, status, body, "application/problem+json", headers)


async def respond(send: Any, status: int, body: bytes, media_type: str,
                   headers: dict[str, str] | None = None) -> None:
    raw_headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
