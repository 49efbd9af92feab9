"""The MLLP client side: send one message, wait for its ACK, map the answer to an outcome.

Outcomes of :meth:`MllpConnection.send`:

* AA / CA: the ACK payload is returned.
* AE / CE / AR / CR: :class:`ApplicationErrorAck`, :class:`CommitErrorAck`,
  :class:`ApplicationRejectAck`, :class:`CommitRejectAck` (each with ``.ack`` and ``.control_id``).
  These are valid protocol exchanges: the connection stays open.
* MSA-2 not echoing our MSH-10: :class:`AckMismatch`; no MSA / unknown code: :class:`AckUnreadable`;
  no answer in time: :class:`MllpTimeout`; refused, reset or closed by the peer:
  :class:`MllpConnectionError`. After any of these the connection is closed and unusable: the byte
  stream can no longer be trusted to pair answers with messages.

Error messages name the control id, never payload content.
"""
from __future__ import annotations

import asyncio
import ssl as ssl_module

from simpul.errors import (
    AckMismatch,
    AckUnreadable,
    ApplicationErrorAck,
    ApplicationRejectAck,
    CommitErrorAck,
    CommitRejectAck,
    FrameTooLarge,
    MllpConnectionError,
    MllpError,
    MllpTimeout,
    NegativeAck,
)
from simpul.v2 import read_header

from .ack import read_ack
from .framing import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, frame

__all__ = ["MllpConnection", "open_mllp_connection"]

_NEGATIVE: dict[str, type[NegativeAck]] = {
    "AE": ApplicationErrorAck,
    "CE": CommitErrorAck,
    "AR": ApplicationRejectAck,
    "CR": CommitRejectAck,
}
_READ_SIZE = 64 * 1024


# Seconds to wait for an ACK the sender asked not to get (MSH-15 NE/ER) before assuming none comes.
NO_ACK_GRACE = 1.0

class MllpConnection:
    """One open MLLP client connection. Sends are serialised: one message in flight at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 peer: str, response_timeout: float, max_frame_bytes: int) -> None:
        self._reader = reader
        self._writer = writer
        self._peer = peer
        self._response_timeout = response_timeout
        self._decoder = FrameDecoder(max_frame_bytes)
        self._pending: list[bytes] = []  # frames read ahead of the one asked for
        self._silent: list[str] = []     # MSH-10s sent with MSH-15 NE/ER that got no ACK in time
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def peer(self) -> str:
        return self._peer

    async def send(self, payload: bytes) -> bytes:
        """Send one unframed HL7 message; return the ACK payload when it is AA or CA.

        The message must have a readable MSH (its MSH-10 is matched against MSA-2); otherwise
        :class:`HeaderError` is raised before anything is written.

        A message whose MSH-15 asks for no accept ACK (NE) or one only on error (ER) may get no
        answer at all from a receiver that follows the standard: the sender waits
        `NO_ACK_GRACE` seconds for one (some receivers answer anyway) and then returns b"".
        """
        header = read_header(payload)
        control_id = header.control_id
        wait = self._response_timeout
        may_stay_silent = header.accept_ack_type.strip().upper() in ("NE", "ER")
        if may_stay_silent:
            wait = min(wait, NO_ACK_GRACE)
        async with self._lock:
            if self._closed:
                raise MllpConnectionError(
                    f"connection to {self._peer} is closed (message {control_id} not sent)")
            try:
                self._writer.write(frame(payload))
                async with asyncio.timeout(wait):
                    await self._writer.drain()
                    answer = await self._read_frame(control_id)
                    while self._late_ack_for_silent_message(answer):
                        answer = await self._read_frame(control_id)
            except TimeoutError as exc:
                if may_stay_silent:
                    self._silent.append(control_id)
                    del self._silent[:-32]
                    return b""
                self._abort()
                raise MllpTimeout(f"no ACK from {self._peer} for message {control_id} within "
                                  f"{self._response_timeout:g} s") from exc
            except MllpError:
                self._abort()
                raise
            except (OSError, asyncio.IncompleteReadError) as exc:  # resets, TLS alerts
                self._abort()
                raise MllpConnectionError(f"connection to {self._peer} failed while sending message "
                                          f"{control_id}: {type(exc).__name__}") from exc
        return self._check(answer, control_id)

    def _late_ack_for_silent_message(self, answer: bytes) -> bool:
        """An ACK that arrives after we stopped waiting for it belongs to that earlier message."""
        if not self._silent:
            return False
        try:
            acked_id = read_ack(answer)[1]
        except AckUnreadable:
            return False
        if acked_id in self._silent:
            self._silent.remove(acked_id)
            return True
        return False

    async def _read_frame(self, control_id: str) -> bytes:
        # Cancellation (a timeout) between reads loses nothing: decoded frames wait in _pending.
        while not self._pending:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise MllpConnectionError(
                    f"{self._peer} closed the connection before the ACK for message {control_id}")
            try:
                self._pending.extend(self._decoder.feed(data))
            except FrameTooLarge as exc:
                raise AckUnreadable(f"answer from {self._peer} for message {control_id} exceeds "
                                    f"{self._decoder.max_frame_bytes} bytes") from exc
        return self._pending.pop(0)

    def _check(self, answer: bytes, control_id: str) -> bytes:
        try:
            code, acked_id, _text = read_ack(answer)
        except AckUnreadable as exc:
            self._abort()
            raise AckUnreadable(f"answer from {self._peer} for message {control_id} is not an ACK: "
                                f"{exc}") from exc
        # MSA-2 echoes MSH-10 of the message being acknowledged.
        if acked_id != control_id:
            self._abort()
            raise AckMismatch(f"ACK from {self._peer} acknowledges {acked_id!r}, "
                              f"expected message {control_id}")
        if code in ("AA", "CA"):
            return answer
        negative = _NEGATIVE.get(code)
        if negative is None:
            self._abort()
            raise AckUnreadable(f"ACK from {self._peer} for message {control_id} has unknown "
                                f"MSA-1 code {code!r}")
        raise negative(f"{self._peer} answered {code} for message {control_id}",
                       ack=answer, control_id=control_id)

    def _abort(self) -> None:
        self._closed = True
        transport = self._writer.transport
        if not transport.is_closing():
            transport.abort()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._closed and self._writer.transport.is_closing():
            return
        self._closed = True
        self._writer.close()
        try:
            async with asyncio.timeout(2.0):
                await self._writer.wait_closed()
        except (OSError, TimeoutError):
            self._writer.transport.abort()

    async def __aenter__(self) -> MllpConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_mllp_connection(
    host: str,
    port: int,
    *,
    connect_timeout: float = 10.0,
    response_timeout: float = 30.0,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> MllpConnection:
    """Connect (and complete the TLS handshake when ``ssl`` is given) to an MLLP peer."""
    peer = f"{host}:{port}"
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl, server_hostname=server_hostname if ssl else None,
                limit=_READ_SIZE)
    except TimeoutError as exc:
        raise MllpTimeout(f"connecting to {peer} took over {connect_timeout:g} s") from exc
    except OSError as exc:
        raise MllpConnectionError(f"cannot connect to {peer}: {type(exc).__name__}") from exc
    return MllpConnection(reader, writer, peer=peer, response_timeout=response_timeout,
                          max_frame_bytes=max_frame_bytes)
