"""The dicomweb destination's peer: a real Orthanc (DICOMweb plugin) behind a small HTTP proxy on
loopback that records which accession numbers were looked up and can fail (503 retryable, 400
final), stall, or go away. One Orthanc serves the whole test session; each order's study is stored
(STOW-RS) the first time the peer hands out that order."""
from __future__ import annotations

import asyncio
import atexit
import socket
import tempfile
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from simpul.connectors.base import Outgoing

from tests.connectors.conformance import Peer
from tests.connectors.peers.imaging_orders import OrderNumbers, accession, imaging_order
from tests.orthanc import Orthanc

_orthanc: Orthanc | None = None
_stored: set[str] = set()


def shared_orthanc() -> Orthanc:
    global _orthanc
    if _orthanc is None:
        _orthanc = Orthanc(Path(tempfile.mkdtemp(prefix="simpul-conformance-orthanc-"))).start()
        atexit.register(_orthanc.stop)
    return _orthanc


def store_study(orthanc: Orthanc, accession_number: str) -> None:
    if accession_number in _stored:
        return
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.AccessionNumber, ds.Modality = "MRCONF", accession_number, "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.StudyTime = "20240102", "083000"
    DICOMwebClient(url=orthanc.dicomweb_url).store_instances([ds])
    _stored.add(accession_number)


class DicomwebPeer(Peer):
    connector = "dicomweb"
    secret = "conformance-pacs-s3cret"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.orthanc = shared_orthanc()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.looked_up: list[str] = []
        self._fault: int | None = None
        self._stalled = False
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._orders = OrderNumbers()
        self._upstream: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._upstream = httpx.AsyncClient(base_url=self.orthanc.base_url, timeout=10)
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5)
        self._server = self._task = None
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode()
        if scope["path"].endswith("/studies") and "AccessionNumber=" in query:
            found = query.split("AccessionNumber=", 1)[1].split("&", 1)[0]
            if not self.looked_up or self.looked_up[-1] != found:
                self.looked_up.append(found)
        while self._stalled:
            await asyncio.sleep(0.05)
        if self._fault is not None:
            status, self._fault = self._fault, None
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        assert self._upstream is not None
        upstream = await self._upstream.get(scope["path"], params=query or None,
                                            headers={"accept": "application/dicom+json"})
        await send({"type": "http.response.start", "status": upstream.status_code,
                    "headers": [(b"content-type", upstream.headers.get("content-type", "").encode())]})
        await send({"type": "http.response.body", "body": upstream.content})

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"url": f"http://127.0.0.1:{self.port}/dicom-web", "timeout": timeout, "bearer_token": self.secret}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        self._fault = 503 if outcome == "retryable" else 400

    def stall(self, on: bool) -> None:
        self._stalled = on

    def outgoing(self, number: int) -> Outgoing:
        made = self._orders.outgoing(number)
        if made.message_type == "ORM^O01":
            store_study(self.orthanc, accession(number))
        return made

    def received(self) -> list[bytes]:
        return [imaging_order(int(found.removeprefix("CONF"))).payload for found in self.looked_up]


PEER = DicomwebPeer
