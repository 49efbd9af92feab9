"""A real Orthanc (Debian packages orthanc + orthanc-dicomweb) for the radiology tests, started on
free ports in a temporary folder, with DICOMweb and the Modality Worklist plugin (worklists are
`*.wl` files in `worklists`, read again on every C-FIND). See /work/shared/specs/components.md.

    with Orthanc(tmp_path) as pacs:
        pacs.dicomweb_url, pacs.dicom_port, pacs.worklists
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

ORTHANC = "/usr/sbin/Orthanc"
PLUGINS = "/usr/share/orthanc/plugins"


def orthanc_available() -> bool:
    return Path(ORTHANC).exists() and Path(PLUGINS, "libOrthancDicomWeb.so").exists()


def require_orthanc() -> None:
    """Skip where Orthanc is not installed, except in CI (scripts/test.sh installs it)."""
    if not orthanc_available():
        if os.environ.get("CI"):
            raise AssertionError("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
        pytest.skip("Orthanc is not installed; scripts/test.sh installs it")


class Orthanc:
    def __init__(self, folder: Path, aet: str = "ORTHANC") -> None:
        self.folder = folder
        self.aet = aet
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.worklists = folder / "worklists"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def start(self) -> Orthanc:
        require_orthanc()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.worklists.mkdir(exist_ok=True)
        (self.folder / "log").mkdir(exist_ok=True)
        config = {
            "Name": "SIMPUL-TEST", "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"),
            "Plugins": [f"{PLUGINS}/libOrthancDicomWeb.so", f"{PLUGINS}/libModalityWorklists.so"],
            "HttpPort": self.http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomAet": self.aet, "DicomPort": self.dicom_port, "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowFindWorklist": True, "UnknownSopClassAccepted": True,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{self.http_port}",
                         "Ssl": False},
            "Worklists": {"Enable": True, "Database": str(self.worklists)},
        }
        (self.folder / "orthanc.json").write_text(json.dumps(config))
        with (self.folder / "stdout.log").open("wb") as log:
            self._process = subprocess.Popen(
                [ORTHANC, f"--logdir={self.folder / 'log'}", str(self.folder / "orthanc.json")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"Orthanc exited: {(self.folder / 'stdout.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/system", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError("Orthanc did not answer /system within 30 s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.folder / "db", ignore_errors=True)
