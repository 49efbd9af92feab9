"""file: write each delivery's payload to a folder, one file per delivery; or read HL7v2 files
(one message, several, or an FHS/BHS batch) from a polled folder as a channel's source.

Features
    Destination: atomic: written to a temporary name, fsynced, then renamed (and the folder fsynced),
    so a reader never sees half a file and a crash never leaves one. Re-delivery overwrites the same
    name (idempotent). A key's run of deliveries is written as a batch: the files are written and
    fsynced in parallel (a disk completes concurrent fsyncs together), then renamed in delivery
    order, then the folder is fsynced once.
    Source: a file is read only once it has settled, every message of it is stored (committed)
    before the file moves to `done/` (or `error/`, with the reason beside it). The engine runs the
    poller itself (simpul/engine/file_source.py), beside its own ingest, as it serves `http`.
Connection
    `directory` (created if missing).
Options
    Destination `filename`: a pattern with {channel}, {destination}, {control_id}, {delivery_id}, {ext}.
    Source: `pattern`, `poll_interval`, `settle_time`, `done_directory`, `error_directory`.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration, IngestOptions
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.errors import ConnectorError, ConnectorUnavailable

# Files of one batch written and fsynced at once (fsyncs issued together finish together).
PARALLEL_WRITES = 8

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_EXTENSIONS = {"application/fhir+json": "json", "application/json": "json", "application/cloudevents+json": "json",
               "x-application/hl7-v2+er7": "hl7"}


class FileDestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str = Field(description="Folder to write into (relative paths are relative to the engine's working folder).",
                           examples=["var/out/adt"])
    filename: str = Field("{channel}-{delivery_id:08d}-{control_id}.{ext}",
                          description="File name pattern: {channel} {destination} {control_id} {delivery_id} {ext}.")


class FileSourceConfig(IngestOptions):
    """HL7v2 files dropped in a folder: each file (one message, several, or an FHS/BHS batch) is split,
    every message stored (commit), and only then the file moved to `done` (or `error`)."""

    directory: str = Field(description="Folder to poll (relative paths are relative to the engine's working "
                                       "folder).", examples=["var/inbox/lab"])
    pattern: str = Field("*.hl7", description="Which files to take (glob). Names starting with '.' and ending "
                                              "in .tmp or .part are never taken: producers write those first.")
    poll_interval: Duration = Field(1.0, description="How often the folder is looked at.")
    settle_time: Duration = Field(2.0, description="A file is read only after its size and time stayed the same "
                                                   "this long, so a file still being written is never read.")
    done_directory: str | None = Field(None, description="Where stored files go (default: <directory>/done).")
    error_directory: str | None = Field(None, description="Where files with a rejected message or a broken batch "
                                                          "go, with a .reason.txt beside them (default: "
                                                          "<directory>/error).")


class FileDestination:
    def __init__(self, config: FileDestinationConfig) -> None:
        self.config = config
        self.directory = Path(config.directory)
        self._pool: ThreadPoolExecutor | None = None

    async def connect(self) -> None:
        try:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectorUnavailable(f"cannot create folder {self.config.directory}: {exc.strerror}") from exc

    def _name(self, outgoing: Outgoing) -> str:
        return self.config.filename.format(
            channel=outgoing.channel, destination=outgoing.destination,
            control_id=_UNSAFE.sub("_", outgoing.control_id) or "none",
            delivery_id=outgoing.delivery_id, ext=_EXTENSIONS.get(outgoing.content_type, "dat"))

    async def send(self, outgoing: Outgoing) -> str:
        result = (await self.send_batch([outgoing]))[0]
        if isinstance(result, ConnectorError):
            raise result
        return result

    async def send_batch(self, outgoings: Sequence[Outgoing]) -> list[str | ConnectorError]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(PARALLEL_WRITES, thread_name_prefix="simpul-file-destination")
        names = [self._name(outgoing) for outgoing in outgoings]
        return await asyncio.to_thread(self._write_batch, names, [outgoing.payload for outgoing in outgoings])

    def _write_batch(self, names: list[str], payloads: list[bytes]) -> list[str | ConnectorError]:
        """Write every file under a temporary name (in parallel), then rename them in order up to
        the first that failed, then fsync the folder(s) so the renames survive a power cut."""
        assert self._pool is not None
        paths = [self.directory / name for name in names]
        written = list(self._pool.map(_write_temporary, paths, payloads))
        results: list[str | ConnectorError] = []
        folders: set[Path] = set()
        for name, path, error in zip(names, paths, written):
            if error is None:
                try:
                    os.replace(_temporary(path), path)
                    folders.add(path.parent)
                    results.append(f"wrote {name}")
                    continue
                except OSError as exc:
                    error = exc
            results.append(ConnectorUnavailable(f"cannot write {name}: {error.strerror}"))
            break
        delivered = sum(isinstance(result, str) for result in results)
        for path in paths[delivered:]:      # not delivered: no temporary file left behind
            with contextlib.suppress(OSError):      # the folder itself may be gone: nothing to remove
                _temporary(path).unlink(missing_ok=True)
        try:
            for folder in folders:
                _fsync_folder(folder)
        except OSError as exc:
            # The files are in place but their names may not survive a power cut: send again.
            return [ConnectorUnavailable(f"cannot sync folder {self.config.directory}: {exc.strerror}")]
        return results

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


def _write_temporary(path: Path, payload: bytes) -> OSError | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(_temporary(path), "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        return None
    except OSError as exc:
        return exc


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# No create_source: the engine runs the folder poller itself, with direct access to its ingest
# (commit-then-move needs to know that the commit failed, which an ACK cannot always say).
CONNECTOR = ConnectorSpec(
    name="file", destination=FileDestinationConfig, create_destination=FileDestination,
    destination_description="Write each payload to a file in a folder.",
    source=FileSourceConfig, source_description="Read HL7v2 files (and batch files) from a folder.")
