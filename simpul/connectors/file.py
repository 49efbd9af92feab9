"""file: write each delivery's payload to a folder, one file per delivery.

Features
    Atomic: written to a temporary name, fsynced, then renamed, so a reader never sees half a
    file and a crash never leaves one. Re-delivery overwrites the same name (idempotent).
Connection
    `directory` (created if missing).
Options
    `filename`: a pattern with {channel}, {destination}, {control_id}, {delivery_id}, {ext}.
"""
from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.errors import ConnectorUnavailable

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_EXTENSIONS = {"application/fhir+json": "json", "application/json": "json", "x-application/hl7-v2+er7": "hl7"}


class FileDestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str = Field(description="Folder to write into (relative paths are relative to the engine's working folder).",
                           examples=["var/out/adt"])
    filename: str = Field("{channel}-{delivery_id:08d}-{control_id}.{ext}",
                          description="File name pattern: {channel} {destination} {control_id} {delivery_id} {ext}.")


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


CONNECTOR = ConnectorSpec(
    name="file", destination=FileDestinationConfig, create_destination=FileDestination,
    destination_description="Write each payload to a file in a folder.")
