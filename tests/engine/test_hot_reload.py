"""Edited channel files are picked up while the engine runs, without dropping open connections."""
from __future__ import annotations

import asyncio
import logging

from simpul.errors import ConfigError
from simpul.mllp.sender import open_mllp_connection
from tests.helpers import adt, channel_yaml, free_port, oru, segment

import pytest


def out(tmp_path, name: str) -> str:
    return f"- label: out\n  file: {{directory: {tmp_path / name}}}\n"


async def test_edited_filter_applies_without_dropping_the_open_connection(harness, tmp_path):
    port = free_port()
    await harness.start({"lab.yaml": channel_yaml("lab", port, out(tmp_path, "a"), message_types="[ADT^*]")},
                        reload_interval=0.1)
    connection = await open_mllp_connection("127.0.0.1", port)
    assert segment(await connection.send(oru("R-1")), "MSA")[1] == "AA"
    await harness.wait_for(lambda: harness.sql("SELECT id FROM messages WHERE status='unrouted'"))

    harness.write_channel("lab.yaml", channel_yaml("lab", port, out(tmp_path, "b"), message_types="[ORU^R01]"))
    await harness.wait_for(lambda: harness.engine.channels["lab"].channel.filter.message_types == ["ORU^R01"])
    # Same connection, still open: the listener was kept because its settings did not change.
    assert segment(await connection.send(oru("R-2")), "MSA")[1] == "AA"
    await connection.close()
    files = await harness.wait_for(lambda: list((tmp_path / "b").glob("*.json")))
    assert "R-2" in files[0].name


async def test_invalid_edit_keeps_the_running_channels(harness, tmp_path, caplog):
    """The watcher sees the edit and refuses it (logged with the finding); the channel keeps running,
    on the connection opened before the edit too, and a later valid edit still applies."""
    caplog.set_level(logging.INFO, logger="simpul.engine")
    port = free_port()
    await harness.start({"lab.yaml": channel_yaml("lab", port, out(tmp_path, "a"))}, reload_interval=0.1)
    connection = await open_mllp_connection("127.0.0.1", port, connect_timeout=2)
    try:
        harness.write_channel("lab.yaml", "name: lab\nsource: {mllp: {port: nope}}\n")

        def refused() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.getMessage().startswith("channel reload refused")]
        await harness.wait_for(refused)
        findings = refused()[0].findings
        assert any(f.startswith("channels/lab.yaml:") and "source.mllp.port" in f for f in findings), findings
        assert "lab" in harness.engine.channels
        assert segment(await asyncio.wait_for(connection.send(adt("STILL-1")), 5), "MSA")[1] == "AA"
        assert segment(await asyncio.wait_for(_send(port, adt("STILL-2")), 5), "MSA")[1] == "AA"
    finally:
        await connection.close()
    # The watcher still runs: fixing the file applies it (a second destination folder).
    harness.write_channel("lab.yaml", channel_yaml("lab", port, out(tmp_path, "b")))
    await harness.wait_for(lambda: [r for r in caplog.records if r.getMessage() == "channels reloaded"])
    assert segment(await asyncio.wait_for(_send(port, adt("FIXED-1")), 5), "MSA")[1] == "AA"
    await harness.wait_for(lambda: list((tmp_path / "b").glob("*FIXED-1*")))


async def test_new_channel_file_starts_a_listener_and_removed_one_stops_it(harness, tmp_path):
    first, second = free_port(), free_port()
    await harness.start({"a.yaml": channel_yaml("a", first, out(tmp_path, "a"))}, reload_interval=0.1)
    harness.write_channel("b.yaml", channel_yaml("b", second, out(tmp_path, "b")))
    await harness.wait_for(lambda: "b" in harness.engine.channels)
    assert segment(await _send(second, adt("NEW-1")), "MSA")[1] == "AA"
    (harness.channels_dir / "b.yaml").unlink()
    await harness.wait_for(lambda: "b" not in harness.engine.channels)
    with pytest.raises(OSError):
        await _send(second, adt("GONE-1"))


async def test_engine_refuses_to_start_with_an_invalid_channel(harness, tmp_path):
    harness.write_channel("bad.yaml", channel_yaml("bad", free_port(), out(tmp_path, "a")).replace(
        "label: out", "label: Out Of Spec"))
    with pytest.raises(ConfigError) as caught:
        await harness.start()
    assert [f for f in caught.value.findings if f.startswith("channels/bad.yaml:")
            and "destinations[0].label: String should match pattern" in f]


async def _send(port: int, payload: bytes) -> bytes:
    connection = await open_mllp_connection("127.0.0.1", port, connect_timeout=2)
    try:
        return await connection.send(payload)
    finally:
        await connection.close()


async def test_reload_with_the_ingest_process_keeps_connections_and_adds_listeners(harness, tmp_path):
    """The production layout: the ingest process applies listener changes itself."""
    first, second = free_port(), free_port()
    await harness.start({"lab.yaml": channel_yaml("lab", first, out(tmp_path, "a"), message_types="[ADT^*]")},
                        reload_interval=0.1, ingest_process=True)
    connection = await open_mllp_connection("127.0.0.1", first)
    assert segment(await connection.send(oru("P-1")), "MSA")[1] == "AA"
    harness.write_channel("lab.yaml", channel_yaml("lab", first, out(tmp_path, "b"), message_types="[ORU^R01]"))
    harness.write_channel("new.yaml", channel_yaml("new", second, out(tmp_path, "c")))
    await harness.wait_for(lambda: second in harness.engine.listener_ports().values(), timeout=15)
    assert segment(await connection.send(oru("P-2")), "MSA")[1] == "AA"       # same connection
    await connection.close()
    assert segment(await _send(second, adt("P-3")), "MSA")[1] == "AA"
    files = await harness.wait_for(lambda: list((tmp_path / "b").glob("*.json")), timeout=15)
    assert "P-2" in files[0].name
