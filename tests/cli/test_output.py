"""What a new user sees from the CLI: whole values in an 80-column terminal, plain TSV in a pipe,
help without type noise after flags, and a closed port reported as not sent on one line.

The commands run as real subprocesses of the installed console script; the terminal is a real
pseudo-terminal 80 columns wide.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simpul.cli import app

from tests.helpers import (
    SIMPUL_CLI, EngineHarness, adt, channel_yaml, file_destination_channel, free_port, send_one, write_settings,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Long values as they occur in the field: a LIS control id, a facility-prefixed MRN.
CONTROL_ID = "LAB-7700123456-0001"
PATIENT = "RSUD-MR-000123456"
UNSUPPORTED = (f"MSH|^~\\&|LIS|LAB|SIMPUL|RSUD|20261126||QRY^A19^QRY_A19|{CONTROL_ID}|P|2.5.1\r"
               f"PID|1||{PATIENT}^^^RSUD^MR||Suharto^Budi\r").encode()


def in_terminal(*args: str, cwd: Path, columns: int = 80) -> str:
    """Run `simpul ARGS` with stdout on a pseudo-terminal `columns` wide; its output without colours."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    process = subprocess.Popen([str(SIMPUL_CLI), *args], stdout=slave, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:        # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert process.stderr is not None
    with process.stderr:
        errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, errors
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def column(table: str, name: str, next_name: str) -> str:
    """The text of one column of a terminal table, its wrapped lines joined (spaces removed, since a
    wrapped line may break inside a word or between two)."""
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if f" {name} " in line and f" {next_name}" in line)
    start, end = lines[header].index(f" {name} "), lines[header].index(f" {next_name}")
    cells = [line[start:end].strip() for line in lines[header + 1:] if not line.startswith("(")]
    return "".join("".join(cells).split())


def piped(*args: str, cwd: Path) -> str:
    done = subprocess.run([str(SIMPUL_CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
async def store_with_traffic(tmp_path: Path, sqlite_url: str) -> Path:
    """A store holding one routed ADT and one message dead-lettered at the mapping stage; its settings file."""
    harness = EngineHarness(tmp_path, sqlite_url)
    port = free_port()
    await harness.start({"receiving-lab-results.yaml": file_destination_channel("receiving-lab-results", port,
                                                                                tmp_path / "out")})
    try:
        await send_one(port, adt("ADT-7700999", patient=PATIENT))
        await send_one(port, UNSUPPORTED)
        await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
        await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
    finally:
        await harness.stop()
    return write_settings(tmp_path, sqlite_url, http_port=0, channels_dir=harness.channels_dir)


@pytest.mark.parametrize("command", [("messages", "search"), ("dead-letters", "list")])
async def test_tables_in_an_80_column_terminal_show_whole_values(store_with_traffic: Path, tmp_path: Path,
                                                                command: tuple[str, str]) -> None:
    out = in_terminal(*command, "-c", str(store_with_traffic), cwd=tmp_path)
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert "…" not in out and "..." not in out, out
    assert CONTROL_ID in out, out
    if command[0] == "dead-letters":
        assert "receiving-lab-results/-" in out          # the channel, whole, as the issue saw it cut
        assert column(out, "error", "status") == "UnsupportedMessageType:MSH-9:unsupportedmessagetypeQRY^A19"
        assert PATIENT in out or re.search(r"hidden at this width: .*patient", out), out
    else:
        assert "ADT-7700999" in out and "routed" in out and PATIENT in out


async def test_tables_in_a_pipe_are_tab_separated_with_every_column(store_with_traffic: Path,
                                                                    tmp_path: Path) -> None:
    rows = [line.split("\t") for line in piped("messages", "search", "-c", str(store_with_traffic),
                                               cwd=tmp_path).splitlines()]
    assert rows[0] == ["id", "received (UTC)", "type", "control id", "sender", "patient", "status", "ack",
                       "deliveries"]
    by_control_id = {row[3]: row for row in rows[1:]}
    assert by_control_id["ADT-7700999"][5:8] == [PATIENT, "routed", "AA"]
    assert by_control_id[CONTROL_ID][2] == "QRY^A19"
    dead = [line.split("\t") for line in piped("dead-letters", "list", "-c", str(store_with_traffic),
                                               cwd=tmp_path).splitlines()]
    assert dead[0][:3] == ["id", "at (UTC)", "channel/destination"] and len(dead) == 2
    assert dead[1][2] == "receiving-lab-results/-" and dead[1][5] == CONTROL_ID and dead[1][6] == PATIENT


def _help(command: list[str]) -> str:
    # In process (the same app object the console script runs): one subprocess per command would
    # cost a second of imports each.
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def _commands(group: list[str]) -> list[list[str]]:
    """Every command path under `group`, read from its own --help."""
    text = _help(group)
    if "Commands:" not in text:
        return [group]
    names = [line.split()[0] for line in text.split("Commands:", 1)[1].splitlines() if line.strip()]
    return [group] + [path for name in names for path in _commands([*group, name])]


def test_help_of_every_command_shows_flags_without_a_type_after_them() -> None:
    commands = _commands([])
    assert ["send"] in commands and ["dead-letters", "replay"] in commands and ["archive", "restore"] in commands
    for command in commands:
        text = _help(command)
        assert "<bool>" not in text, f"simpul {' '.join(command)} --help:\n{text}"
    assert re.search(r"^\s+--json\s+Machine-readable", _help(["dead-letters", "list"]), re.MULTILINE)
    # The console script prints the same help.
    assert piped("send", "--help", cwd=Path.cwd()) == _help(["send"]).replace("Usage: root", "Usage: simpul")


async def test_send_to_a_closed_port_says_not_sent_on_one_line(tmp_path: Path) -> None:
    batch = tmp_path / "batch.hl7"
    batch.write_bytes(adt("CLOSED-1") + adt("CLOSED-2"))
    port = free_port()                       # bound once and released: nothing listens there
    done = subprocess.run([str(SIMPUL_CLI), "send", f"127.0.0.1:{port}", str(batch), "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == f"not sent: cannot connect to 127.0.0.1:{port} (connection refused)\n"
    assert done.stdout == "sent 0 message(s); not sent 2\n"


async def test_send_counts_sent_and_not_sent_apart(tmp_path: Path, harness: EngineHarness) -> None:
    port = free_port()
    await harness.start({"adt.yaml": channel_yaml("adt", port, f"""\
        - label: out
          file: {{directory: {tmp_path / 'out'}}}
        """)})
    batch = tmp_path / "batch.hl7"
    batch.write_bytes(b"PID|1||MR1\r" + adt("MIX-1") + adt("MIX-2"))    # the first one has no MSH
    # The engine runs in this event loop: the client must not block it.
    process = await asyncio.create_subprocess_exec(str(SIMPUL_CLI), "send", f"127.0.0.1:{port}", str(batch), "-q",
                                                   cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert out.decode() == "sent 2 message(s): AA 2; not sent 1\n"
    assert len(err.decode().splitlines()) == 1 and "batch.hl7: not sent:" in err.decode()
