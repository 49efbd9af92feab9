"""Baseline MLLP server: frames and ACKs, nothing else (no parsing, no storage).

    python bench/ack_only_server.py [--port 0]

Prints ``PORT <n>`` on stdout once listening on 127.0.0.1, then serves until SIGTERM/SIGINT.
The ACK is a fixed template; the only per-message work beyond framing is slicing MSH-10 out of
the first segment, because MSA-2 must echo it and the load driver checks that for both servers.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
_ACK_HEAD = b"\x0bMSH|^~\\&|BASELINE|BENCH|BENCH|BENCH|20261126000000||ACK|ACK1|P|2.5.1\rMSA|AA|"
_ACK_TAIL = b"\r\x1c\r"


def control_id_of(payload: bytes) -> bytes:
    """MSH-10 (the tenth field of the MSH segment) or b"" when the header is too short."""
    segment_end = payload.find(b"\r")
    fields = payload[:segment_end if segment_end >= 0 else len(payload)].split(b"|", 10)
    return fields[9] if len(fields) > 9 else b""


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buffer = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buffer += chunk
            answers = []
            while True:
                start = buffer.find(START_BLOCK)
                if start < 0:
                    buffer = b""
                    break
                end = buffer.find(END_BLOCK, start + 1)
                if end < 0:
                    buffer = buffer[start:]
                    break
                answers.append(_ACK_HEAD + control_id_of(buffer[start + 1:end]) + _ACK_TAIL)
                buffer = buffer[end + 2:]
            if answers:
                writer.write(b"".join(answers))
                await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve_connection, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
    sys.exit(0)
