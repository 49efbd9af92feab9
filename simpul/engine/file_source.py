"""The file source: a folder polled for HL7v2 files, each message stored before the file moves on.

For each file that has settled (same size and modification time for `settle_time`; names starting
with '.' or ending in .tmp/.part are never taken, since producers write those and rename them):

1. read it and split it (one message, several, or an FHS/BHS batch; simpul.v2.split_file);
2. hand every message to the same Ingest as MLLP and HTTP: decode, dedup, commit (fsync-durable);
3. only then move the file to `done/` - or to `error/`, with a `.reason.txt` beside it, when a
   message was rejected (AR, undecodable) or the batch counts do not add up.

If a commit fails, the file stays where it is and is tried again on the next poll. A crash between
the commit and the move leaves the file in the inbox; the next run stores it again, and the dedup
index (refilled from the store at start) answers each message with its stored ACK instead of
storing it twice. Nothing is lost and nothing is doubled.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from simpul.connectors.file import FileSourceConfig
from simpul.engine.ingest import Ingest
from simpul.v2 import split_file

log = logging.getLogger("simpul.file_source")

_NOT_YET = (".tmp", ".part", ".partial", ".filepart")


class FilePoller:
    """Polls one folder for one source key; `start()` runs it as a task, `close()` stops it."""

    def __init__(self, key: str, settings: FileSourceConfig, ingest: Ingest) -> None:
        self.key = key
        self.settings = settings
        self.ingest = ingest
        self.inbox = Path(settings.directory)
        self.done = Path(settings.done_directory) if settings.done_directory else self.inbox / "done"
        self.error = Path(settings.error_directory) if settings.error_directory else self.inbox / "error"
        self._seen: dict[Path, tuple[int, int, float]] = {}   # file -> (size, mtime_ns, first seen unchanged)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for folder in (self.inbox, self.done, self.error):
            folder.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name=f"file-source:{self.key}")
        log.info("polling folder", extra={"source": self.key})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a folder problem must not stop the poller
                log.error("polling failed; retrying", extra={"source": self.key, "error_class": type(exc).__name__})
            await asyncio.sleep(self.settings.poll_interval)

    def ready_files(self, now: float | None = None) -> list[Path]:
        """Files whose size and mtime have not changed for `settle_time`, oldest first."""
        now = time.monotonic() if now is None else now
        ready = []
        present = set()
        for path in sorted(self.inbox.glob(self.settings.pattern)):
            name = path.name
            if name.startswith(".") or name.lower().endswith(_NOT_YET) or not path.is_file():
                continue
            present.add(path)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            before = self._seen.get(path)
            if before is None or before[:2] != (st.st_size, st.st_mtime_ns):
                self._seen[path] = (st.st_size, st.st_mtime_ns, now)
                if self.settings.settle_time > 0:
                    continue
            elif now - before[2] < self.settings.settle_time:
                continue
            ready.append(path)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    async def poll_once(self) -> int:
        """Store every settled file; returns how many files were moved out of the inbox."""
        moved = 0
        for path in self.ready_files():
            if await self.take(path):
                moved += 1
        return moved

    async def take(self, path: Path) -> bool:
        """Store one file's messages, then move it; False when it stays for a retry (commit failed)."""
        data = await asyncio.to_thread(path.read_bytes)
        split = split_file(data)
        problems = list(split.problems)
        if not split.messages:
            problems.append("no HL7v2 message in the file (no line starts with MSH)")
        for n, raw in enumerate(split.messages, 1):
            ack = await self.ingest.handle(raw)
            if self.ingest.last_commit_failed:
                log.error("commit failed; file left in the inbox", extra={"source": self.key})
                return False
            code = _msa_code(ack) if ack else ""
            if code in ("AR", "CR", "AE", "CE"):
                problems.append(f"message {n} of {len(split.messages)} answered {code}")
        reason = "\n".join(problems) + "\n" if problems else None
        await asyncio.to_thread(_move, path, self.error if problems else self.done, reason)
        if problems:
            log.warning("file moved to error", extra={"source": self.key, "messages": len(split.messages)})
        self._seen.pop(path, None)
        return True


def _msa_code(ack: bytes) -> str:
    for line in ack.split(b"\r"):
        if line.startswith(b"MSA"):
            return line[4:6].decode("latin-1")
    return ""


def _move(path: Path, folder: Path, reason: str | None = None) -> Path:
    """Rename into `folder` (same file system: atomic) under a free name, then fsync the folder so
    the move itself survives a power cut. The reason file, if any, is complete (written under a
    temporary name, then renamed) before the file it explains appears beside it."""
    target = folder / path.name
    if target.exists():
        target = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{path.name}"
    if reason is not None:
        explained = target.with_name(target.name + ".reason.txt")
        partial = target.with_name(f".{explained.name}.part")
        partial.write_text(reason, encoding="utf-8")
        os.replace(partial, explained)
    os.replace(path, target)
    for directory in {folder, path.parent}:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return target
