"""Raw bytes of one message -> header, text and lines: the one sequence every reader follows.

The listener's ingest, ``simpul map``, ``simpul conformance`` and the mapping all go through these
steps, so the same bytes are accepted or refused the same way, with the same reason, everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from .charset import decode_message
from .header import MessageHeader, read_header
from .segments import check_no_binary, split_segments

__all__ = ["ReadMessage", "read_body", "read_message"]


@dataclass(frozen=True, slots=True)
class ReadMessage:
    header: MessageHeader
    text: str  # the whole message, decoded
    codec: str  # the Python codec that decoded it
    lines: list[str]  # split_segments(text)


def read_body(raw: bytes, header: MessageHeader, *, default_charset: str = "utf-8",
              fallback_charset: str | None = None) -> ReadMessage:
    """Decode the message whose header was read (MSH-18, else ``default_charset``) and refuse
    binary data. Raises CharsetError or MessageError naming the field or line."""
    text, codec = decode_message(raw, header.charset, default=default_charset, fallback=fallback_charset)
    lines = split_segments(text)
    check_no_binary(text, lines)
    return ReadMessage(header, text, codec, lines)


def read_message(raw: bytes, *, default_charset: str = "utf-8",
                 fallback_charset: str | None = None) -> ReadMessage:
    """:func:`read_header` then :func:`read_body`; raises a MessageError subclass for bytes no
    Simpul reader accepts."""
    return read_body(raw, read_header(raw), default_charset=default_charset,
                     fallback_charset=fallback_charset)
