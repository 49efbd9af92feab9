"""Reading HL7v2 messages from files the way analysts keep them.

A file may hold one message or several (each starting with an MSH line); segments may be
separated by \r, \n or \r\n and the file may start with a UTF-8 BOM. On the wire segments end
with \r, so `read_message_file` returns each message with \r separators and its bytes otherwise
unchanged (no re-encoding: the charset stays what MSH-18 says).
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path

_LINE_BREAK = re.compile(rb"\r\n|\n|\r")


def split_messages(data: bytes) -> list[bytes]:
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    messages: list[list[bytes]] = []
    for line in _LINE_BREAK.split(data):
        if not line.strip():
            continue
        if line.startswith(b"MSH") or line.startswith(b"FHS") or line.startswith(b"BHS") or not messages:
            if line.startswith((b"FHS", b"BHS", b"FTS", b"BTS")):
                continue            # batch envelopes: the messages inside are sent one by one
            messages.append([line])
        elif line.startswith((b"FTS", b"BTS")):
            continue
        else:
            messages[-1].append(line)
    return [b"\r".join(lines) + b"\r" for lines in messages]


def read_message_file(path: Path) -> list[bytes]:
    return split_messages(path.read_bytes())
