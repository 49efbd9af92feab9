"""Ingest over real MLLP sockets: commit-then-ACK, duplicates, rejects, charsets, commit failure."""
from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from simpul.errors import ApplicationErrorAck
from simpul.mllp.framing import frame
from tests.helpers import adt, channel_yaml, free_port, segment, send_one, send_raw

FILE_DESTINATION = """\
- label: out
  file: {{directory: {directory}}}
"""


def file_channel(tmp_path, port: int, **kwargs) -> str:
    return channel_yaml("adt", port, FILE_DESTINATION.format(directory=tmp_path / "out"), **kwargs)


@pytest.fixture
def store_harness(tmp_path, database_url):
    from tests.helpers import EngineHarness
    return EngineHarness(tmp_path, database_url)


class _WriteLock:
    """Another client holding the store's write lock on `messages`, so the engine's commit waits."""

    def __init__(self, database_url: str) -> None:
        if database_url.startswith("sqlite"):
            self.connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None,
                                              check_same_thread=False)
            self.connection.execute("BEGIN IMMEDIATE")
        else:
            import psycopg      # only the PostgreSQL run needs the driver directly

            self.connection = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
            # EXCLUSIVE blocks INSERT and leaves reads free.
            self.connection.execute("LOCK TABLE messages IN EXCLUSIVE MODE")

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()


async def test_message_is_stored_byte_exact_with_business_keys_before_aa(store_harness, tmp_path):
    """While the commit cannot happen (another writer holds the lock), no ACK is written; once it
    can, the AA comes and the row is there, byte-exact with its business keys."""
    port = free_port()
    await store_harness.start({"adt.yaml": file_channel(tmp_path, port)})
    try:
        raw = adt("CTRL-1", patient="MR777", visit="V42")
        lock = await asyncio.to_thread(_WriteLock, store_harness.database_url)
        try:
            sending = asyncio.create_task(send_one(port, raw, timeout=30))
            # Long enough for an ACK that did not wait for the commit to arrive many times over.
            done, _ = await asyncio.wait({sending}, timeout=1.0)
            assert not done, f"an ACK was written before the message was committed: {sending.result()!r}"
            assert store_harness.sql("SELECT id FROM messages") == []
        finally:
            await asyncio.to_thread(lock.release)
        ack = await sending
        msa = segment(ack, "MSA")
        assert msa[1] == "AA" and msa[2] == "CTRL-1"
        rows = store_harness.sql("SELECT raw, status, patient_id, visit_number, message_type, control_id,"
                                 " sending_application FROM messages")
        assert len(rows) == 1
        row = rows[0]
        assert bytes(row.raw) == raw
        assert (row.patient_id, row.visit_number, row.message_type, row.control_id, row.sending_application) == (
            "MR777", "V42", "ADT^A01", "CTRL-1", "SIMRS")
    finally:
        await store_harness.stop()


async def test_resent_duplicate_gets_the_original_ack_and_is_not_processed_again(store_harness, tmp_path):
    port = free_port()
    await store_harness.start({"adt.yaml": file_channel(tmp_path, port)})
    try:
        first = await send_one(port, adt("DUP-1"))
        second = await send_one(port, adt("DUP-1"))
        assert second == first                       # byte-identical, same ACK control id
        reused = await send_one(port, adt("DUP-1", patient="MR999"))   # same MSH-10, other content
        assert segment(reused, "MSA")[1] == "AA" and reused != first
        await store_harness.wait_for(lambda: len(store_harness.sql(
            "SELECT id FROM deliveries WHERE status='delivered'")) == 2)
        assert len(store_harness.sql("SELECT id FROM messages")) == 2
    finally:
        await store_harness.stop()


async def test_duplicate_after_restart_still_gets_its_original_ack(harness, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})
    first = await send_one(port, adt("RESTART-1"))
    await harness.stop()
    await harness.start()
    again = await send_one(port, adt("RESTART-1"))
    assert again == first
    assert len(harness.sql("SELECT id FROM messages")) == 1


async def test_enhanced_mode_answers_ca_and_honours_msh15_never(harness, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})
    ack = await send_one(port, adt("ENH-1", msh15="AL", msh16="NE"))
    assert segment(ack, "MSA")[1] == "CA"
    # MSH-15 NE: the sender asked for no accept ACK; the next message on the connection still gets its own.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(adt("ENH-2", msh15="NE", msh16="AL")) + frame(adt("ENH-3")))
    await writer.drain()
    data = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
    assert segment(data[1:-2], "MSA")[2] == "ENH-3"
    writer.close()
    stored = {row.control_id for row in harness.sql("SELECT control_id FROM messages")}
    assert stored == {"ENH-1", "ENH-2", "ENH-3"}


@pytest.mark.parametrize("payload, field", [
    (b"PID|1||MR1\rPV1|1|I\r", "MSH"),                                     # no MSH at all
    (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|\rPID|1\r", "MSH^1^10"),          # MSH-10 missing
    (b"MSH|^~\\&|A|B|C|D|20260101|||C9|P|2.5\rPID|1\r", "MSH^1^9"),          # MSH-9 missing
])
async def test_unreadable_message_gets_ar_with_err_and_is_stored_as_rejected(harness, tmp_path, payload, field):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})
    ack = await send_raw(port, payload)
    assert segment(ack, "MSA")[1] == "AR"
    err = segment(ack, "ERR")
    assert err[2].startswith(field)
    rows = harness.sql("SELECT status, raw, ack_code FROM messages")
    assert [(r.status, bytes(r.raw), r.ack_code) for r in rows] == [("rejected", payload, "AR")]


@pytest.mark.parametrize("body, line", [
    (b"PID|1||MR1\r\x00\x01garbage\r", 3),              # binary junk after a good segment
    (b"PID|1||MR1\x1b[2J\r", 2),                        # an escape sequence inside a field
])
async def test_binary_data_gets_ar_naming_the_line(harness, tmp_path, body, line):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})
    payload = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|BAD-SEG|P|2.5.1\r" + body
    ack = await send_raw(port, payload)
    assert segment(ack, "MSA")[1:3] == ["AR", "BAD-SEG"]
    err = segment(ack, "ERR")
    assert err[3].startswith("102^") and f"line {line} " in err[8]
    assert [(r.status, bytes(r.raw)) for r in harness.sql("SELECT status, raw FROM messages")] == [
        ("rejected", payload)]


async def test_a_base64_field_wrapped_over_several_lines_is_accepted(harness, tmp_path):
    """Lenient on structure, like the parsers senders test against (the dcm4che PDF sample)."""
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})
    payload = adt("WRAP-1") + b"OBX|1|ED|18748-4^Report^LN||^AP^PDF^Base64^JVBERi0xLjQK\r\nJVFT0YNCg==||||||F\r"
    assert segment(await send_raw(port, payload), "MSA")[1] == "AA"


async def test_blank_lines_and_lf_separators_are_accepted(harness, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})
    payload = adt("LF-1").replace(b"\r", b"\n").replace(b"\nPID", b"\n\nPID")
    assert segment(await send_raw(port, payload), "MSA")[1] == "AA"


async def test_latin1_declared_in_msh18_is_stored_byte_exact_and_decoded(harness, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})
    raw = adt("L1-1", charset="8859/1", name="Müller^Zoë").decode("utf-8").encode("latin-1")
    ack = await send_one(port, raw)
    assert segment(ack, "MSA")[1] == "AA"
    row = harness.sql("SELECT raw, charset FROM messages")[0]
    assert bytes(row.raw) == raw and row.charset == "latin-1"
    out = await harness.wait_for(lambda: list((tmp_path / "out").glob("*.json")))
    assert "Müller" in out[0].read_text(encoding="utf-8")


async def test_undeclared_latin1_bytes_get_ae_unless_a_fallback_charset_is_configured(harness, tmp_path):
    port, fallback_port = free_port(), free_port()
    await harness.start({
        "strict.yaml": file_channel(tmp_path, port),
        "lenient.yaml": channel_yaml("lenient", fallback_port,
                                     FILE_DESTINATION.format(directory=tmp_path / "out2"),
                                     extra_source="fallback_charset: windows-1252\n"),
    })
    raw = adt("W-1", name="Müller^Zoë").decode("utf-8").encode("cp1252")     # no MSH-18: UTF-8 expected
    with pytest.raises(ApplicationErrorAck) as caught:
        await send_one(port, raw)
    assert segment(caught.value.ack, "ERR")[2].startswith("MSH^1^18")
    ack = await send_one(fallback_port, raw)
    assert segment(ack, "MSA")[1] == "AA"
    rows = harness.sql("SELECT status, charset, source FROM messages ORDER BY id")
    assert [(r.status, r.charset) for r in rows] == [("rejected", ""), ("routed", "windows-1252")] or \
        [(r.status, r.charset) for r in rows] == [("rejected", ""), ("received", "windows-1252")]


async def test_commit_failure_answers_ae_and_the_resend_succeeds(harness, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)}, busy_timeout=0.2)
    database = harness.database_url.removeprefix("sqlite:///")
    locker = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")          # another process holding the write lock: commits fail
    try:
        with pytest.raises(ApplicationErrorAck) as caught:
            await send_one(port, adt("LOCK-1"))
        assert segment(caught.value.ack, "ERR")[3].startswith("207")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    ack = await send_one(port, adt("LOCK-1"))   # not a duplicate: the failed one was never stored
    assert segment(ack, "MSA")[1] == "AA"
    assert [r.control_id for r in harness.sql("SELECT control_id FROM messages")] == ["LOCK-1"]


async def test_many_concurrent_connections_all_acked_and_stored(harness, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": file_channel(tmp_path, port)})

    async def client(n: int) -> list[str]:
        from simpul.mllp.sender import open_mllp_connection
        connection = await open_mllp_connection("127.0.0.1", port)
        codes = []
        for i in range(20):
            ack = await connection.send(adt(f"CC-{n}-{i}", patient=f"P{n}"))
            codes.append(segment(ack, "MSA")[1])
        await connection.close()
        return codes

    results = await asyncio.gather(*(client(n) for n in range(25)))
    assert all(code == "AA" for codes in results for code in codes)
    assert harness.sql("SELECT count(*) AS n FROM messages")[0].n == 500
