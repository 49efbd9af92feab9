"""MLLP framing and a fixed ACK for the bare reference servers (bench only; no HL7 semantics)."""
from __future__ import annotations

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
_ACK_HEAD = b"\x0bMSH|^~\\&|BARE|BENCH|BENCH|BENCH|20261126000000||ACK|ACK1|P|2.5.1\rMSA|AA|"
_ACK_TAIL = b"\r\x1c\r"


def control_id_of(payload: bytes) -> bytes:
    """MSH-10 (the tenth field of the MSH segment) or b"" when the header is too short."""
    segment_end = payload.find(b"\r")
    fields = payload[:segment_end if segment_end >= 0 else len(payload)].split(b"|", 10)
    return fields[9] if len(fields) > 9 else b""


def ack_for(payload: bytes) -> bytes:
    """A framed AA whose MSA-2 echoes the message's MSH-10."""
    return _ACK_HEAD + control_id_of(payload) + _ACK_TAIL


class FrameSplitter:
    """Feed bytes, get whole frame payloads (between 0x0B and 0x1C 0x0D) back."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        frames = []
        position = 0
        while True:
            start = buffer.find(START_BLOCK, position)
            if start < 0:
                self._buffer = b""
                return frames
            end = buffer.find(END_BLOCK, start + 1)
            if end < 0:
                self._buffer = buffer[start:]
                return frames
            frames.append(buffer[start + 1:end])
            position = end + 2
