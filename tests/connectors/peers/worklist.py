"""The worklist destination's peer: the worklist folder an MWL SCP (Orthanc) serves. "Down" means
the folder is replaced by a plain file (an unmounted share); what the peer "received" is read back
from the `.wl` items (by accession number), so an item that is not a valid DICOM file fails."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydicom import dcmread

from simpul.connectors.base import Outgoing

from tests.connectors.conformance import Peer
from tests.connectors.peers.imaging_orders import OrderNumbers, imaging_order


class WorklistPeer(Peer):
    connector = "worklist"
    timeouts = "a local write has no deadline option; the runtime's lease bounds it"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.directory = tmp_path / "worklists"
        self._parked = tmp_path / "parked"
        self._orders = OrderNumbers()

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
            self.directory.write_bytes(b"")

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"directory": str(self.directory), "station_aet": "CT01", "default_modality": "CT"}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        if outcome == "retryable":
            self._unmount()
        else:
            self._orders.refuse_next = True     # the next message is no order: refused for good

    async def heal(self) -> None:
        self._mount()

    def stall(self, on: bool) -> None:
        raise AssertionError(self.timeouts)

    def outgoing(self, number: int) -> Outgoing:
        return self._orders.outgoing(number)

    def received(self) -> list[bytes]:
        folder = self.directory if self.directory.is_dir() else self._parked
        items = sorted(folder.glob("*.wl"), key=lambda path: path.stat().st_mtime_ns)
        taken = []
        for path in items:
            item = dcmread(path)
            number = int(str(item.AccessionNumber).removeprefix("CONF"))
            assert item.ScheduledProcedureStepSequence[0].Modality == "CT"
            taken.append(imaging_order(number).payload)
        return taken


PEER = WorklistPeer
