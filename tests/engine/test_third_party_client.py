"""An MLLP client we did not write: python-hl7's `mllp_send` talks to the engine and gets AA.

`mllp_send` frames and splits messages its own way (with --loose it turns LF into CR and drops
the trailing segment terminator), so this checks our listener against another reading of MLLP.
"""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, EngineHarness, adt, file_destination_channel, free_port

MLLP_SEND = REPO_ROOT / ".venv" / "bin" / "mllp_send"


@pytest.fixture
def mllp_send() -> Path:
    if not MLLP_SEND.exists():
        found = shutil.which("mllp_send")
        if found is None:
            pytest.fail("mllp_send is missing: pip install hl7 (python-hl7 installs the console script)")
        return Path(found)
    return MLLP_SEND


def _acks(stdout: bytes) -> list[list[str]]:
    """MSA fields of every ACK mllp_send printed (it prints the raw frames it received)."""
    found = []
    for chunk in stdout.split(b"\x1c"):
        text = chunk.strip(b"\x0b\r\n").decode("latin-1")
        for segment in text.split("\r"):
            if segment.startswith("MSA|"):
                found.append(segment.split("|"))
    return found


async def test_mllp_send_from_python_hl7_gets_aa_and_the_messages_are_stored(
        harness: EngineHarness, tmp_path: Path, mllp_send: Path) -> None:
    port = free_port()
    await harness.start({"adt.yaml": file_destination_channel("adt", port, tmp_path / "out")})
    messages = [adt("PYHL7-1", patient="MR-PY1"), adt("PYHL7-2", patient="MR-PY2")]
    source = tmp_path / "two.hl7"
    source.write_bytes(b"".join(m.replace(b"\r", b"\n") for m in messages))     # as an analyst saves them

    process = await asyncio.create_subprocess_exec(
        str(mllp_send), "--port", str(port), "--file", str(source), "--loose", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode(errors="replace")
    assert [(msa[1], msa[2]) for msa in _acks(out)] == [("AA", "PYHL7-1"), ("AA", "PYHL7-2")]

    rows = harness.sql("SELECT control_id, raw, patient_id, status FROM messages ORDER BY id")
    assert [(row.control_id, row.patient_id) for row in rows] == [("PYHL7-1", "MR-PY1"), ("PYHL7-2", "MR-PY2")]
    # Stored byte-exact as mllp_send put it on the wire: CR separators, no trailing CR.
    assert [bytes(row.raw) for row in rows] == [m.rstrip(b"\r") for m in messages]
    await harness.wait_for(lambda: len(list((tmp_path / "out").glob("*.json"))) == 2)
