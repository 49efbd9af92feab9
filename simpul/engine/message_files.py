"""Reading HL7v2 messages from files the way analysts keep them.

A file may hold one message or several (each starting with an MSH line, batch envelopes allowed);
segments may be separated by \r, \n or \r\n and the file may start with a UTF-8 BOM. The split is
:func:`simpul.v2.split_messages`: each message comes back with \r separators and its bytes otherwise
unchanged (no re-encoding: the charset stays what MSH-18 says).
"""
from __future__ import annotations

from pathlib import Path

from simpul.v2 import split_messages

__all__ = ["read_message_file"]


def read_message_file(path: Path) -> list[bytes]:
    return split_messages(path.read_bytes())
