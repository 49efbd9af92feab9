"""The MLLP listener on real loopback sockets."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from simpul.errors import MllpConnectionError
from simpul.mllp.ack import read_ack
from simpul.mllp.framing import END_BLOCK, START_BLOCK, frame
from simpul.mllp.listener import ListenerSettings, MllpServer, start_mllp_server
from simpul.mllp.sender import open_mllp_connection
from simpul.mllp.tls import TlsSettings, client_ssl_context, server_ssl_context

from .conftest import AckingHandler, RawClient, RecordingEvents, hl7

Start = Callable[..., Awaitable[MllpServer]]


@pytest.fixture
async def start(handler: AckingHandler, events: RecordingEvents) -> AsyncIterator[Start]:
    servers: list[MllpServer] = []

    async def _start(handler_: Any = None, **kwargs: Any) -> MllpServer:
        ssl_context = kwargs.pop("ssl", None)
        server = await start_mllp_server(handler_ or handler, settings=ListenerSettings(**kwargs),
                                         ssl=ssl_context, events=events)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.close(grace=1.0)


async def connect(clients: list[RawClient], port: int, **kwargs: Any) -> RawClient:
    client = await RawClient.connect(port, **kwargs)
    clients.append(client)
    return client


async def test_frame_split_at_every_byte(start: Start, clients: list[RawClient],
                                         handler: AckingHandler) -> None:
    server = await start()
    client = await connect(clients, server.port)
    client.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = hl7("SPLIT1")
    for byte in frame(message):
        await client.send(bytes([byte]))
        await asyncio.sleep(0.001)
    assert read_ack(await client.read_frame())[:2] == ("AA", "SPLIT1")
    assert handler.received == [message]


async def test_hundred_frames_in_one_write_get_hundred_acks_in_order(
        start: Start, clients: list[RawClient], handler: AckingHandler) -> None:
    server = await start()
    client = await connect(clients, server.port)
    ids = [f"BULK{i:03d}" for i in range(100)]
    await client.send(b"".join(frame(hl7(i)) for i in ids))
    answered = [read_ack(await client.read_frame())[1] for _ in ids]
    assert answered == ids
    assert [m.split(b"|")[9].decode() for m in handler.received] == ids


async def test_junk_nul_and_crlf_between_frames_are_skipped_and_counted(
        start: Start, clients: list[RawClient], events: RecordingEvents) -> None:
    server = await start()
    client = await connect(clients, server.port)
    junk = [b"\r\n", b"\x00\x00\x00", b"noise", b"\n"]
    await client.send(junk[0] + frame(hl7("J1")) + junk[1] + frame(hl7("J2")) + junk[2]
                      + frame(hl7("J3")) + junk[3])
    assert [read_ack(await client.read_frame())[1] for _ in range(3)] == ["J1", "J2", "J3"]
    assert events.junk == sum(map(len, junk))


async def test_oversize_frame_gets_ar_then_close_and_just_under_passes(
        start: Start, clients: list[RawClient], handler: AckingHandler,
        events: RecordingEvents) -> None:
    limit = 2000
    server = await start(max_frame_bytes=limit)
    client = await connect(clients, server.port)
    fits = hl7("FITS", "OBX|1|TX|||" + "x" * 10)
    fits = fits + b"Z" * (limit - len(fits))  # exactly at the limit
    assert len(fits) == limit
    too_big = hl7("BIG1", "OBX|1|TX|||" + "y" * limit)
    await client.send(frame(fits))
    assert read_ack(await client.read_frame())[:2] == ("AA", "FITS")
    await client.send(frame(too_big) + frame(hl7("AFTER")))
    code, control_id, text = read_ack(await client.read_frame())
    assert (code, control_id) == ("AR", "BIG1")
    assert await client.read_eof() == b""  # closed; the message after it is not processed
    assert handler.received == [fits]
    assert events.counts["too_large"] == 1


async def test_oversize_without_readable_msh_closes_silently(
        start: Start, clients: list[RawClient]) -> None:
    server = await start(max_frame_bytes=100)
    client = await connect(clients, server.port)
    await client.send(START_BLOCK + b"\x00garbage" * 50)  # no end block needed to notice
    assert await client.read_eof() == b""


async def test_idle_timeout_closes(start: Start, clients: list[RawClient],
                                   events: RecordingEvents) -> None:
    server = await start(idle_timeout=0.3)
    client = await connect(clients, server.port)
    await client.send(frame(hl7("I1")))
    await client.read_frame()
    loop = asyncio.get_running_loop()
    began = loop.time()
    # No upper bound on a loaded machine: the close must come (the event names the idle timer as
    # its cause) and never before the idle timeout.
    assert await client.read_eof(timeout=30) == b""
    assert loop.time() - began >= 0.25
    assert events.counts["timeout_idle"] == 1


async def test_partial_frame_timeout_closes(start: Start, clients: list[RawClient],
                                            events: RecordingEvents, handler: AckingHandler) -> None:
    server = await start(frame_timeout=0.3, idle_timeout=30)
    client = await connect(clients, server.port)
    await client.send(START_BLOCK + hl7("P1")[:20])
    assert await client.read_eof(timeout=3) == b""
    assert events.counts["timeout_frame"] == 1
    assert handler.received == []


async def test_slow_but_steady_frame_is_not_cut_by_idle_timeout(
        start: Start, clients: list[RawClient]) -> None:
    server = await start(idle_timeout=0.4, frame_timeout=5)
    client = await connect(clients, server.port)
    message = frame(hl7("STEADY"))
    for i in range(0, len(message), 10):
        await client.send(message[i:i + 10])
        await asyncio.sleep(0.05)  # total well over idle_timeout, no gap as long
    assert read_ack(await client.read_frame())[1] == "STEADY"


async def test_max_connections_cap(start: Start, clients: list[RawClient],
                                   events: RecordingEvents) -> None:
    server = await start(max_connections=2)
    first = await connect(clients, server.port)
    second = await connect(clients, server.port)
    await first.send(frame(hl7("C1")))
    await second.send(frame(hl7("C2")))
    await first.read_frame()
    await second.read_frame()
    third = await connect(clients, server.port)
    assert await third.read_eof() == b""
    assert events.counts["refused"] == 1
    assert server.connection_count == 2
    await first.close()
    for _ in range(100):
        if server.connection_count == 1:
            break
        await asyncio.sleep(0.01)
    fourth = await connect(clients, server.port)  # a freed slot is usable again
    await fourth.send(frame(hl7("C4")))
    assert read_ack(await fourth.read_frame())[1] == "C4"


async def test_handler_returning_none_sends_nothing(start: Start, clients: list[RawClient]) -> None:
    async def picky(payload: bytes) -> bytes | None:
        if b"|SILENT|" in payload:
            return None
        return await AckingHandler()(payload)

    server = await start(picky)
    client = await connect(clients, server.port)
    await client.send(frame(hl7("SILENT")) + frame(hl7("LOUD")))
    assert read_ack(await client.read_frame())[1] == "LOUD"  # the first frame got no answer


async def test_handler_exception_closes_connection_not_server(
        start: Start, clients: list[RawClient], caplog: pytest.LogCaptureFixture) -> None:
    async def broken(payload: bytes) -> bytes | None:
        if b"BOOM" in payload:
            raise RuntimeError(f"bad payload {payload!r}")
        return await AckingHandler()(payload)

    server = await start(broken)
    client = await connect(clients, server.port)
    with caplog.at_level(logging.ERROR, logger="simpul.mllp"):
        await client.send(frame(hl7("BOOM", "PID|1||SECRET-MRN")))
        assert await client.read_eof() == b""
    assert "RuntimeError" in caplog.text
    assert "SECRET-MRN" not in caplog.text
    other = await connect(clients, server.port)
    await other.send(frame(hl7("OK2")))
    assert read_ack(await other.read_frame())[1] == "OK2"


async def test_handler_timeout_closes_without_ack(start: Start, clients: list[RawClient],
                                                  events: RecordingEvents) -> None:
    async def stuck(payload: bytes) -> bytes | None:
        await asyncio.sleep(30)
        return None

    server = await start(stuck, handler_timeout=0.3)
    client = await connect(clients, server.port)
    await client.send(frame(hl7("STUCK")))
    assert await client.read_eof(timeout=3) == b""
    assert events.counts["timeout_handler"] == 1


async def test_peer_half_close_still_gets_its_acks(start: Start, clients: list[RawClient]) -> None:
    async def slow(payload: bytes) -> bytes | None:
        await asyncio.sleep(0.01)
        return await AckingHandler()(payload)

    server = await start(slow)
    client = await connect(clients, server.port)
    await client.send(frame(hl7("H1")) + frame(hl7("H2")) + frame(hl7("H3")))
    client.writer.write_eof()
    rest = await client.read_eof()
    assert rest.count(END_BLOCK) == 3
    assert [read_ack(f)[1] for f in rest.split(END_BLOCK)[:3] for f in [f[1:]]] == ["H1", "H2", "H3"]


async def test_peer_reset_mid_handling_leaks_nothing(start: Start, events: RecordingEvents,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def waits(payload: bytes) -> bytes | None:
        await release.wait()
        return await AckingHandler()(payload)

    server = await start(waits)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        client = await RawClient.connect(server.port)
        await client.send(frame(hl7("R1")) + frame(hl7("R2")) + START_BLOCK + b"MSH|")
        await asyncio.sleep(0.05)
        client.writer.transport.abort()  # RST-like close while the handler is busy
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.sleep(0.05)
    assert server.connection_count == 0
    assert events.counts["closed"] == events.counts["opened"] == 1
    assert "Traceback" not in caplog.text


async def test_close_finishes_in_flight_message_then_disconnects(start: Start) -> None:
    started = asyncio.Event()

    async def slowish(payload: bytes) -> bytes | None:
        started.set()
        await asyncio.sleep(0.1)
        return await AckingHandler()(payload)

    server = await start(slowish)
    client = await RawClient.connect(server.port)
    try:
        await client.send(frame(hl7("LAST")))
        await started.wait()
        await server.close(grace=2)
        assert read_ack(await client.read_frame())[1] == "LAST"
        assert await client.read_eof() == b""
        assert server.connection_count == 0
        with pytest.raises(OSError):
            await RawClient.connect(server.port)
    finally:
        await client.close()


# -- TLS ---------------------------------------------------------------------------------------


async def test_tls_round_trip_with_tls12_or_newer(start: Start, tls_files: dict[str, Path]) -> None:
    server_context = server_ssl_context(TlsSettings(cert=tls_files["server_cert"],
                                                    key=tls_files["server_key"]))
    server = await start(ssl=server_context)
    client_context = client_ssl_context(ca=tls_files["ca"])
    async with await open_mllp_connection("127.0.0.1", server.port, ssl=client_context) as conn:
        ack = await conn.send(hl7("TLS1"))
        assert read_ack(ack)[:2] == ("AA", "TLS1")
        version = conn._writer.get_extra_info("ssl_object").version()
        assert version in ("TLSv1.2", "TLSv1.3")


async def test_tls_refuses_clients_below_min_version(start: Start, tls_files: dict[str, Path]) -> None:
    server = await start(ssl=server_ssl_context(TlsSettings(
        cert=tls_files["server_cert"], key=tls_files["server_key"], min_version="1.3")))
    old_client = client_ssl_context(ca=tls_files["ca"])
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(MllpConnectionError):
        conn = await open_mllp_connection("127.0.0.1", server.port, ssl=old_client)
        await conn.send(hl7("OLD"))


async def test_mutual_tls_requires_a_client_certificate(
        start: Start, tls_files: dict[str, Path], handler: AckingHandler,
        caplog: pytest.LogCaptureFixture) -> None:
    server = await start(ssl=server_ssl_context(TlsSettings(
        cert=tls_files["server_cert"], key=tls_files["server_key"], ca=tls_files["ca"])))
    anonymous = client_ssl_context(ca=tls_files["ca"])
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(MllpConnectionError):
            # TLS 1.3 reports the missing certificate after the handshake: on connect or first send.
            conn = await open_mllp_connection("127.0.0.1", server.port, ssl=anonymous,
                                              response_timeout=5)
            try:
                await conn.send(hl7("NOCERT"))
            finally:
                await conn.close()
    assert handler.received == []
    assert "Traceback" not in caplog.text

    with_cert = client_ssl_context(ca=tls_files["ca"], cert=tls_files["client_cert"],
                                   key=tls_files["client_key"])
    async with await open_mllp_connection("127.0.0.1", server.port, ssl=with_cert) as conn:
        assert read_ack(await conn.send(hl7("CERT1")))[:2] == ("AA", "CERT1")


async def test_plain_tcp_client_on_tls_listener_is_dropped(
        start: Start, clients: list[RawClient], tls_files: dict[str, Path]) -> None:
    server = await start(ssl=server_ssl_context(TlsSettings(cert=tls_files["server_cert"],
                                                            key=tls_files["server_key"])))
    client = await connect(clients, server.port)
    await client.send(frame(hl7("PLAIN")))
    data = await client.read_eof()
    assert END_BLOCK not in data


async def test_pipelining_peer_that_reads_late_gets_every_ack_in_order(
        start: Start, clients: list[RawClient], handler: AckingHandler) -> None:
    server = await start()
    client = await connect(clients, server.port)
    ids = [f"Q{i:04d}" for i in range(1500)]

    async def read_later() -> list[str]:
        await asyncio.sleep(0.3)  # let the server hit its write and read back-pressure limits
        return [read_ack(await client.read_frame())[1] for _ in ids]

    reading = asyncio.create_task(read_later())
    await client.send(b"".join(frame(hl7(i, "PID|1||" + "x" * 200)) for i in ids))
    assert await reading == ids
    assert len(handler.received) == len(ids)


async def test_close_cancels_a_handler_stuck_past_the_grace_period(start: Start) -> None:
    cancelled = asyncio.Event()
    running = asyncio.Event()

    async def stuck(payload: bytes) -> bytes | None:
        running.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    server = await start(stuck)
    client = await RawClient.connect(server.port)
    try:
        await client.send(frame(hl7("STUCK2")))
        await asyncio.wait_for(running.wait(), 10)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await server.close(grace=0.2)
        # Far below the handler's 30 s: close cancelled it instead of waiting (generous for load).
        assert loop.time() - began < 15
        assert cancelled.is_set()
        assert await client.read_eof() == b""
    finally:
        await client.close()
