"""Reading HL7v2 messages from files the way analysts keep them.

A file may hold one message or several (each starting with an MSH line); segments may be
separated by \r, \n or \r\n and the file may start with a UTF-8 BOM. On the wire segments end
with \r, so `read_message_file` returns each message with \r separators and its bytes otherwise
unchanged (no re-encoding: the charset stays what MSH-18 says).
"""
from __future__ import annotations

from pathlib import Path

from simpul.mappings.batch import split_file


def split_messages(data: bytes) -> list[bytes]:
    """Every message of a file (batch envelopes FHS/BHS/BTS/FTS dropped; see mappings/batch.py)."""
    return split_file(data).messages


def read_message_file(path: Path) -> list[bytes]:
    return split_messages(path.read_bytes())
