"""The file source: a polled folder, batches split, each message committed before its file moves to
done/ (or error/ with the reason), a file still being written never read, a re-dropped file not stored twice."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from simpul.connectors.file import FileSourceConfig as FileSource
from simpul.engine.file_source import FilePoller
from tests.helpers import EngineHarness

CHANNEL = """name: inbox
source:
  file: {{directory: {inbox}, poll_interval: 50ms, settle_time: 200ms}}
mapping: v2_to_fhir
destinations:
  - label: out
    file: {{directory: {out}}}
"""


def oru(control_id: str) -> str:
    return "\r".join([f"MSH|^~\\&|LIS|LAB|HUB|RSUD|20240115090000+0700||ORU^R01|{control_id}|P|2.5.1",
                      "PID|1||RM-1^^^RSUD^MR||Santoso^Budi",
                      "OBR|1|P-1|F-1|2345-7^Glucose^LN|||20240115073000",
                      "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-110||||F"]) + "\r"


async def test_batch_file_is_split_stored_and_moved_to_done(harness: EngineHarness, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    await harness.start({"inbox.yaml": CHANNEL.format(inbox=inbox, out=tmp_path / "out")})
    batch = "FHS|^~\\&|LIS\rBHS|^~\\&|LIS\r" + oru("F-1") + oru("F-2") + oru("F-3") + "BTS|3\rFTS|1\r"
    (inbox / ".batch.hl7.tmp").write_text(batch)        # written under a temporary name ...
    os.replace(inbox / ".batch.hl7.tmp", inbox / "batch.hl7")   # ... then renamed, as producers do
    await harness.wait_for(lambda: (inbox / "done" / "batch.hl7").exists())
    assert not (inbox / "batch.hl7").exists()
    rows = harness.sql("SELECT control_id FROM messages ORDER BY id")
    assert [r[0] for r in rows] == ["F-1", "F-2", "F-3"]
    await harness.wait_for(lambda: len(harness.sql("SELECT id FROM deliveries WHERE status='delivered'")) == 3)

    # The same file dropped again (a producer retry, or a crash before the move): stored once only.
    (inbox / "again.hl7").write_text(batch)
    await harness.wait_for(lambda: (inbox / "done" / "again.hl7").exists())
    assert len(harness.sql("SELECT id FROM messages")) == 3


async def test_broken_batch_goes_to_error_with_its_reason(harness: EngineHarness, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    await harness.start({"inbox.yaml": CHANNEL.format(inbox=inbox, out=tmp_path / "out")})
    (inbox / "short.hl7").write_text("BHS|^~\\&|LIS\r" + oru("E-1") + "BTS|2\r")
    await harness.wait_for(lambda: (inbox / "error" / "short.hl7.reason.txt").exists())
    assert "BTS-1 says 2" in (inbox / "error" / "short.hl7.reason.txt").read_text()
    # The message it does hold is stored all the same: the error folder is for staff to look at.
    assert [r[0] for r in harness.sql("SELECT control_id FROM messages")] == ["E-1"]


@pytest.mark.parametrize("settle", [0.3])
def test_a_file_still_growing_is_not_ready(tmp_path: Path, settle: float) -> None:
    poller = FilePoller("file:test", FileSource(directory=str(tmp_path), settle_time=settle), ingest=None)  # type: ignore[arg-type]
    path = tmp_path / "growing.hl7"
    path.write_text("MSH|^~\\&|A")
    t0 = time.monotonic()
    assert poller.ready_files(t0) == []                        # first sight: not settled yet
    with path.open("a") as f:
        f.write("|B|C")                                         # the producer is still writing
    assert poller.ready_files(t0 + settle + 0.1) == []          # changed since: the clock starts again
    assert poller.ready_files(t0 + 2 * settle + 0.2) == [path]  # unchanged for settle_time: ready


async def test_a_failed_move_after_the_commit_loses_nothing_and_stores_nothing_twice(
        harness: EngineHarness, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    await harness.start({"inbox.yaml": CHANNEL.format(inbox=inbox, out=tmp_path / "out")})
    done = inbox / "done"
    done.rmdir()
    done.write_text("not a folder")          # the move into done/ will fail, as a crash there would
    (inbox / "two.hl7").write_text(oru("M-1") + oru("M-2"))
    await harness.wait_for(lambda: len(harness.sql("SELECT id FROM messages")) == 2)
    await asyncio.sleep(0.5)                  # several more polls: each stores again -> dedup answers
    assert (inbox / "two.hl7").exists()       # not moved: still in the inbox, nothing lost
    done.unlink()
    done.mkdir()
    await harness.wait_for(lambda: (done / "two.hl7").exists())
    assert [r[0] for r in harness.sql("SELECT control_id FROM messages ORDER BY id")] == ["M-1", "M-2"]
