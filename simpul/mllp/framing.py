"""MLLP framing: bytes in, frame payloads out. No I/O, no HL7 semantics.

An MLLP frame is ``0x0B <payload> 0x1C 0x0D`` (HL7 v2 Minimal Lower Layer Protocol, release 2).

Choices made where the standard leaves room, all of them about robustness against real senders:

* Bytes between frames (junk, NUL padding, a CR/LF some senders append after the end block) are
  skipped and counted in ``junk_bytes``; decoding resynchronises on the next 0x0B.
* Inside a frame only the two-byte end block ``0x1C 0x0D`` ends it. A lone 0x1C followed by any other
  byte is payload data, and so is a 0x0B: a frame is never silently abandoned half way.
* A frame whose payload exceeds ``max_frame_bytes`` raises :class:`FrameTooLarge`; the first
  :data:`OVERSIZE_PREFIX_BYTES` of it stay on ``decoder.oversize_prefix`` so the caller can still read
  its MSH and answer AR. Payloads completed earlier in the same ``feed`` call ride on the exception as
  ``exc.frames`` so none is lost. After the error the decoder starts over outside any frame; the
  stream is not trustworthy any more and a listener should close the connection.
"""
from __future__ import annotations

from simpul.errors import FrameTooLarge

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
# Enough for any realistic MSH segment (and then some) so an AR can echo MSH-10.
OVERSIZE_PREFIX_BYTES = 4096

__all__ = [
    "START_BLOCK",
    "END_BLOCK",
    "DEFAULT_MAX_FRAME_BYTES",
    "OVERSIZE_PREFIX_BYTES",
    "frame",
    "FrameDecoder",
]

_START = 0x0B
_FS = 0x1C


def _find_end_block(data: bytes | bytearray, start: int) -> int:
    """Index of the first 0x1C 0x0D at or after ``start``, or -1.

    Searches for the single byte 0x1C (memchr, tens of times faster than a two-byte pattern
    search on long payloads) and checks the byte after it.
    """
    find = data.find
    last = len(data) - 1
    i = find(b"\x1c", start)
    while 0 <= i < last:
        if data[i + 1] == 0x0D:
            return i
        i = find(b"\x1c", i + 1)
    return -1


def frame(payload: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP frame."""
    return b"".join((START_BLOCK, payload, END_BLOCK))


class FrameDecoder:
    """Incremental MLLP decoder for one byte stream (one connection).

    ``feed`` accepts whatever the transport delivered and returns the payloads completed by it, in
    order. Cost is linear in the bytes fed: the end block is searched with ``bytes.find`` starting
    just before the newly arrived bytes, never rescanning a long partial frame.
    """

    __slots__ = ("max_frame_bytes", "junk_bytes", "oversize_prefix", "_buf", "_in_frame")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be >= 1")
        self.max_frame_bytes = max_frame_bytes
        self.junk_bytes = 0
        self.oversize_prefix = b""
        self._buf = bytearray()  # payload bytes of the unfinished frame (after 0x0B)
        self._in_frame = False

    @property
    def partial(self) -> bool:
        """True while a frame has started (0x0B seen) but its end block has not arrived."""
        return self._in_frame

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the unfinished frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any unfinished frame (counters are kept)."""
        self._buf = bytearray()
        self._in_frame = False

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return the complete payloads it finished, oldest first."""
        frames: list[bytes] = []
        if not data:
            return frames
        limit = self.max_frame_bytes
        pos = 0
        n = len(data)
        if self._in_frame:
            buf = self._buf
            old = len(buf)
            buf += data
            # Start one byte early: the 0x1C of the end block may have ended the previous chunk.
            end = _find_end_block(buf, old - 1 if old else 0)
            if end < 0:
                size = len(buf) - (buf[-1] == _FS)  # a trailing 0x1C may open the end block
                if size > limit:
                    self._oversize(bytes(buf[:min(size, OVERSIZE_PREFIX_BYTES)]), frames)
                return frames
            if end > limit:
                self._oversize(bytes(buf[:min(end, OVERSIZE_PREFIX_BYTES)]), frames)
            frames.append(bytes(buf[:end]))
            self._buf = bytearray()
            self._in_frame = False
            pos = end + 2 - old  # continue in `data` right after the end block
        find = data.find
        while pos < n:
            start = find(START_BLOCK, pos)
            if start < 0:
                self.junk_bytes += n - pos
                return frames
            self.junk_bytes += start - pos
            end = _find_end_block(data, start + 1)
            if end < 0:
                body = data[start + 1:]
                size = len(body) - (body[-1:] == b"\x1c")
                if size > limit:
                    self._oversize(body[:min(size, OVERSIZE_PREFIX_BYTES)], frames)
                self._buf = bytearray(body)
                self._in_frame = True
                return frames
            if end - start - 1 > limit:
                self._oversize(data[start + 1:min(end, start + 1 + OVERSIZE_PREFIX_BYTES)], frames)
            frames.append(data[start + 1:end])
            pos = end + 2
        return frames

    def _oversize(self, prefix: bytes, frames: list[bytes]) -> None:
        self.oversize_prefix = prefix
        self.reset()
        exc = FrameTooLarge(f"MLLP frame exceeds the limit of {self.max_frame_bytes} bytes")
        exc.frames = frames  # type: ignore[attr-defined]  # payloads completed before the oversize one
        raise exc
