"""file: write each delivery's payload to a folder, one file per delivery; or read HL7v2 files
(one message, several, or an FHS/BHS batch) from a polled folder as a channel's source.

Features
    Destination: atomic: written to a temporary name, fsynced, then renamed, so a reader never sees
    half a file and a crash never leaves one. Re-delivery overwrites the same name (idempotent).
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
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration, IngestOptions
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.errors import ConnectorUnavailable

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

    async def connect(self) -> None:
        try:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectorUnavailable(f"cannot create folder {self.config.directory}: {exc.strerror}") from exc

    async def send(self, outgoing: Outgoing) -> str:
        name = self.config.filename.format(
            channel=outgoing.channel, destination=outgoing.destination,
            control_id=_UNSAFE.sub("_", outgoing.control_id) or "none",
            delivery_id=outgoing.delivery_id, ext=_EXTENSIONS.get(outgoing.content_type, "dat"))
        try:
            await asyncio.to_thread(self._write, self.directory / name, outgoing.payload)
        except OSError as exc:
            raise ConnectorUnavailable(f"cannot write {name}: {exc.strerror}") from exc
        return f"wrote {name}"

    def _write(self, path: Path, payload: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.part")
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    async def close(self) -> None:
        return None


# No create_source: the engine runs the folder poller itself, with direct access to its ingest
# (commit-then-move needs to know that the commit failed, which an ACK cannot always say).
CONNECTOR = ConnectorSpec(
    name="file", destination=FileDestinationConfig, create_destination=FileDestination,
    destination_description="Write each payload to a file in a folder.",
    source=FileSourceConfig, source_description="Read HL7v2 files (and batch files) from a folder.")
