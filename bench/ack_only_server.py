"""Bare reference 1: an MLLP server that frames and ACKs, nothing else (no parsing, no storage).

    python bench/ack_only_server.py [--port 0]

Prints ``PORT <n>`` on stdout once listening on 127.0.0.1, then serves until SIGTERM/SIGINT.
The ACK is a fixed template; the only per-message work beyond framing is slicing MSH-10 out of
the first segment, because MSA-2 must echo it and the load driver checks that for every server.
An asyncio Protocol (not streams): it is the fastest pure-Python shape, so the reference shows
what this interpreter and machine can do at all. uvloop is used when it is installed.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from mllp_frames import FrameSplitter, ack_for

try:  # optional: a faster event loop when present (the report says which loop ran)
    import uvloop
except ImportError:  # pragma: no cover - depends on the machine
    uvloop = None


class AckOnly(asyncio.Protocol):
    def __init__(self) -> None:
        self.frames = FrameSplitter()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        answers = [ack_for(payload) for payload in self.frames.feed(data)]
        if answers and self.transport is not None:
            self.transport.write(b"".join(answers))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(AckOnly, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(parser.parse_args().port))
    sys.exit(0)
