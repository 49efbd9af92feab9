"""A FHIR endpoint that answers at once: HTTP/1.1 keep-alive, 200 with a tiny transaction-response.

    python bench/http_sink.py [--port 0]

Prints ``PORT <n>`` once listening on 127.0.0.1. No parsing beyond the request line, the
headers' Content-Length and the body length, so the destination, not the endpoint, is what the
sustained benchmark measures. On SIGTERM prints ``REQUESTS <n>`` (how many were answered).
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys

_BODY = b'{"resourceType":"Bundle","type":"transaction-response","entry":[]}'
_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: "
             + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


class Sink(asyncio.Protocol):
    answered = 0

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < head_end + 4 + length:
                break
            self.buffer = self.buffer[head_end + 4 + length:]
            answers += 1
        if answers and self.transport is not None:
            Sink.answered += answers
            self.transport.write(_RESPONSE * answers)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    print(f"REQUESTS {Sink.answered}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
    sys.exit(0)
