"""`simpul run` is the composition root: the engine it starts serves the HTTP API it was handed."""
from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.helpers import EngineProcess, bearer, file_destination_channel, issue_token, free_port, write_settings


def test_simpul_run_serves_health_the_v1_api_the_legacy_paths_and_the_docs(tmp_path: Path) -> None:
    mllp_port, http_port = free_port(), free_port()
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(file_destination_channel("adt", mllp_port, tmp_path / "out"))
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=http_port)
    engine = EngineProcess(settings, mllp_port, tmp_path / "engine.log")
    engine.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as client:
            deadline = time.monotonic() + 15
            while True:        # the MLLP port opens before the HTTP one
                try:
                    health = client.get("/healthz")
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, (tmp_path / "engine.log").read_text()
                    time.sleep(0.05)
            assert health.status_code == 200 and health.json()["channels"] == ["adt"]
            # The engine made its first admin from SIMPUL_ADMIN_USER/PASSWORD (EngineProcess sets them).
            assert client.get("/api/v1/channels").status_code == 401
            client.headers.update(bearer(issue_token(f"sqlite:///{tmp_path / 'simpul.db'}", role="viewer")))
            assert [c["name"] for c in client.get("/api/v1/channels").json()] == ["adt"]
            assert client.get("/api/destinations").json()[0]["destination"] == "out"
            assert client.get("/docs").status_code == 200
    finally:
        engine.stop()
