"""The file destination's peer: a folder; "down" means the folder is replaced by a plain file
(an unmounted share), which makes every write fail until it comes back."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from tests.connectors.conformance import Peer


class FilePeer(Peer):
    connector = "file"
    final_errors = "every write failure (disk full, share gone, permissions) can heal, so all are retryable"
    timeouts = "a local write has no deadline option; the runtime's lease bounds it"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.directory = tmp_path / "out"
        self._parked = tmp_path / "parked"

    async def start(self) -> None:
        self._mount()

    async def stop(self) -> None:
        self._unmount()

    def _mount(self) -> None:
        if self.directory.is_file():
            self.directory.unlink()
        if self._parked.exists():
            self._parked.rename(self.directory)
        self.directory.mkdir(exist_ok=True)

    def _unmount(self) -> None:
        if self.directory.is_dir():
            self.directory.rename(self._parked)
            self.directory.write_bytes(b"")   # something that is not a folder stands where it was

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"directory": str(self.directory)}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        assert outcome == "retryable", self.final_errors
        self._unmount()

    async def heal(self) -> None:
        self._mount()

    def stall(self, on: bool) -> None:
        raise AssertionError(self.timeouts)

    def received(self) -> list[bytes]:
        folder = self.directory if self.directory.is_dir() else self._parked
        return [path.read_bytes() for path in sorted(folder.iterdir()) if not path.name.startswith(".")]


PEER = FilePeer
