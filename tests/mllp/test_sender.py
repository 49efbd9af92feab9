"""The MLLP sender against FakeLis, a fault-injecting peer on loopback."""
from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from simpul.errors import (
    AckMismatch,
    ApplicationErrorAck,
    ApplicationRejectAck,
    CommitErrorAck,
    CommitRejectAck,
    HeaderError,
    MllpConnectionError,
    MllpTimeout,
    NegativeAck,
)
from simpul.mllp.ack import read_ack
from simpul.mllp.sender import open_mllp_connection
from simpul.mllp.tls import TlsSettings, client_ssl_context, server_ssl_context

from .conftest import hl7

from tests.fakes.fake_lis import FakeLis


async def test_aa_returns_the_ack() -> None:
    async with FakeLis() as lis:
        async with await open_mllp_connection("127.0.0.1", lis.port) as conn:
            ack = await conn.send(hl7("S1"))
            ack2 = await conn.send(hl7("S2"))
        assert read_ack(ack)[:2] == ("AA", "S1")
        assert read_ack(ack2)[:2] == ("AA", "S2")
        assert lis.received == [hl7("S1"), hl7("S2")]
        assert conn.closed


@pytest.mark.parametrize(("code", "exception"), [
    ("AE", ApplicationErrorAck), ("AR", ApplicationRejectAck),
    ("CE", CommitErrorAck), ("CR", CommitRejectAck),
])
async def test_negative_acks_map_to_one_exception_each(code: str,
                                                       exception: type[NegativeAck]) -> None:
    async with FakeLis(ack_codes=[code]) as lis:
        async with await open_mllp_connection("127.0.0.1", lis.port) as conn:
            with pytest.raises(exception) as info:
                await conn.send(hl7("N1", "PID|1||SECRET-MRN"))
            assert info.value.control_id == "N1"
            assert read_ack(info.value.ack)[0] == code
            assert "N1" in str(info.value) and "SECRET" not in str(info.value)
            # A negative ACK is a valid exchange: the connection stays usable.
            assert not conn.closed
            assert read_ack(await conn.send(hl7("N2")))[0] == "AA"


async def test_commit_accept_is_success() -> None:
    async with FakeLis(ack_code="CA") as lis:
        async with await open_mllp_connection("127.0.0.1", lis.port) as conn:
            assert read_ack(await conn.send(hl7("CA1")))[0] == "CA"


async def test_every_third_message_rejected() -> None:
    async with FakeLis(nack_every=3, nack_code="AR") as lis:
        async with await open_mllp_connection("127.0.0.1", lis.port) as conn:
            outcomes = []
            for i in range(6):
                try:
                    await conn.send(hl7(f"E{i}"))
                    outcomes.append("ok")
                except ApplicationRejectAck:
                    outcomes.append("AR")
    assert outcomes == ["ok", "ok", "AR", "ok", "ok", "AR"]


async def test_msa2_mismatch_raises_and_closes() -> None:
    async with FakeLis(wrong_control_id_every=1) as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port)
        with pytest.raises(AckMismatch) as info:
            await conn.send(hl7("M1"))
        assert "M1" in str(info.value)
        assert conn.closed
        with pytest.raises(MllpConnectionError):
            await conn.send(hl7("M2"))
        assert len(lis.received) == 1


async def test_response_timeout_when_peer_never_answers() -> None:
    async with FakeLis(no_answer_every=1) as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port, response_timeout=0.2)
        with pytest.raises(MllpTimeout) as info:
            await conn.send(hl7("T1"))
        assert isinstance(info.value, TimeoutError)
        assert "T1" in str(info.value)
        assert conn.closed
        await conn.close()


async def test_missing_end_block_is_a_timeout() -> None:
    async with FakeLis(drop_end_block_every=1) as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port, response_timeout=0.2)
        with pytest.raises(MllpTimeout):
            await conn.send(hl7("D1"))
        assert conn.closed


async def test_slow_ack_within_the_timeout_is_fine() -> None:
    async with FakeLis(ack_delay=0.1) as lis:
        async with await open_mllp_connection("127.0.0.1", lis.port, response_timeout=2) as conn:
            assert read_ack(await conn.send(hl7("SLOW")))[1] == "SLOW"


async def test_peer_closes_before_ack() -> None:
    async with FakeLis(close_before_ack_every=1) as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port)
        with pytest.raises(MllpConnectionError) as info:
            await conn.send(hl7("C1"))
        assert "C1" in str(info.value)
        assert conn.closed


async def test_connection_refused() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(MllpConnectionError):
        await open_mllp_connection("127.0.0.1", port, connect_timeout=2)


async def test_message_without_msh_is_refused_before_sending() -> None:
    async with FakeLis() as lis:
        async with await open_mllp_connection("127.0.0.1", lis.port) as conn:
            with pytest.raises(HeaderError):
                await conn.send(b"PID|1||123\r")
            assert not conn.closed
        assert lis.received == []


async def test_concurrent_sends_are_serialised() -> None:
    async with FakeLis(ack_delay=0.01) as lis:
        async with await open_mllp_connection("127.0.0.1", lis.port) as conn:
            acks = await asyncio.gather(*(conn.send(hl7(f"P{i}")) for i in range(10)))
    assert [read_ack(a)[1] for a in acks] == [f"P{i}" for i in range(10)]


async def test_sender_over_tls_to_fake_lis(tls_files: dict[str, Path]) -> None:
    lis_context = server_ssl_context(TlsSettings(cert=tls_files["server_cert"],
                                                 key=tls_files["server_key"]))
    async with FakeLis(ssl=lis_context) as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port,
                                          ssl=client_ssl_context(ca=tls_files["ca"]))
        async with conn:
            assert read_ack(await conn.send(hl7("TLSLIS")))[:2] == ("AA", "TLSLIS")


async def test_untrusted_server_certificate_is_a_connection_error(
        tls_files: dict[str, Path]) -> None:
    lis_context = server_ssl_context(TlsSettings(cert=tls_files["server_cert"],
                                                 key=tls_files["server_key"]))
    async with FakeLis(ssl=lis_context) as lis:
        other_ca = client_ssl_context(ca=None)  # system store: does not know the test CA
        with pytest.raises(MllpConnectionError):
            await open_mllp_connection("127.0.0.1", lis.port, ssl=other_ca)


async def test_peer_resets_before_ack() -> None:
    async with FakeLis(reset_before_ack_every=1) as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port)
        with pytest.raises(MllpConnectionError):
            await conn.send(hl7("RST1"))
        assert conn.closed


async def test_answer_without_start_block_is_not_taken_as_an_ack() -> None:
    async with FakeLis(drop_start_block_every=1) as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port, response_timeout=0.2)
        with pytest.raises(MllpTimeout):
            await conn.send(hl7("NOSB"))
        assert conn.closed



@pytest.mark.parametrize("late", [None, 0.3])
async def test_a_message_that_asks_for_no_ack_is_not_waited_for(monkeypatch, late) -> None:
    """MSH-15 NE: a standard receiver stays silent (late=None); one that answers anyway, after
    we stopped waiting (late=0.3 s), must not confuse the next exchange on the connection."""
    import simpul.mllp.sender as sender_module

    monkeypatch.setattr(sender_module, "NO_ACK_GRACE", 0.1)
    silent = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|NE-1|P|2.5.1|||NE|NE\rPID|1\r"
    normal = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|N-2|P|2.5.1\rPID|1\r"

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                data = await reader.readuntil(b"\x1c\r")
            except asyncio.IncompleteReadError:
                break
            control_id = data.split(b"|")[9].decode()
            if control_id == "NE-1":
                if late is None:
                    continue
                await asyncio.sleep(late)
            writer.write(b"\x0bMSH|^~\\&|C|D|A|B|20260101||ACK|X|P|2.5.1\rMSA|AA|"
                         + control_id.encode() + b"\r\x1c\r")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = await open_mllp_connection("127.0.0.1", port, response_timeout=5)
    assert await connection.send(silent) == b""
    ack = await connection.send(normal)
    assert b"MSA|AA|N-2" in ack
    await connection.close()
    server.close()
    await server.wait_closed()
