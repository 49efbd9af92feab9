"""Channels and an HTTP client for the dead-letter and delivery-control tests."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from tests.helpers import EngineProcess, bearer, channel_yaml, free_port, store_rows, write_settings

FAST_RETRY = "retry: {max_attempts: 50, initial_delay: 50ms, max_delay: 200ms, jitter: false}"
ONE_TRY = "retry: {max_attempts: 1}"


def fhir_channel(port: int, base_url: str, *, retry: str = ONE_TRY, extra: str = "", name: str = "adt",
                 more_destinations: str = "") -> str:
    """One fhir_server destination labelled `fhir`; `extra` adds YAML keys to it."""
    lines = [f"- label: fhir", f"  order_by: patient", f'  fhir_server: {{base_url: "{base_url}", timeout: 2s}}',
             f"  {retry}"] + [f"  {line}" for line in extra.splitlines() if line.strip()]
    return channel_yaml(name, port, "\n".join(lines) + "\n" + more_destinations)


class FhirEngineProcess(NamedTuple):
    """An engine child process with one ADT channel (`fhir_channel`) on a SQLite store, not yet started."""

    mllp_port: int
    database_url: str
    settings: Path
    engine: EngineProcess


def fhir_engine_process(tmp_path: Path, fhir_base_url: str, *, lease: str) -> FhirEngineProcess:
    mllp_port = free_port()
    url = f"sqlite:///{tmp_path / 'simpul.db'}"
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(fhir_channel(mllp_port, fhir_base_url))
    settings = write_settings(tmp_path, url, http_port=free_port(), lease=lease)
    return FhirEngineProcess(mllp_port, url, settings, EngineProcess(settings, mllp_port, tmp_path / "engine.log"))


def wait_until(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll (blocking; for tests that drive child processes) until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        time.sleep(0.05)


def row_count(database_url: str, query: str) -> int:
    """The `n` column of a `SELECT count(*) AS n ...` against the store."""
    return int(store_rows(database_url, query)[0].n)


def patient_names(fhir_server: Any) -> dict[str, str]:
    """MRN -> family name of every Patient on the server."""
    found = {}
    for patient in fhir_server.resources("Patient"):
        found[patient["identifier"][0]["value"]] = patient.get("name", [{}])[0].get("family", "")
    return found


def posted_mrns(fhir_server: Any) -> list[str]:
    """MRNs of the Patients in every answered POSTed Bundle, in the order the server got them."""
    order = []
    for request in fhir_server.requests:
        if request.method != "POST" or request.status >= 300 or not request.body:
            continue
        for entry in request.json.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "Patient":
                order.append(resource["identifier"][0]["value"])
    return order


class Api:
    """The engine's HTTP API on its real port."""

    def __init__(self, port: int, token: str | None) -> None:
        headers = bearer(token) if token else {}
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10)

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def post(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        response = await self.client.post(path, json=body)
        assert response.status_code == expect, response.text
        return response.json()

    async def close(self) -> None:
        await self.client.aclose()


def hh_mm(moment: float, offset_minutes: int) -> str:
    t = time.gmtime(moment + offset_minutes * 60)
    return f"{t.tm_hour:02d}:{t.tm_min:02d}"
