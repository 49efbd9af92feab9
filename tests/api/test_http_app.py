"""The one HTTP app as a client sees it: /api/v1 with the old /api paths still answering, OpenAPI at
/docs, and RFC 9457 problem documents whose status follows the error's class."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from simpul.api.problems import status_for
from simpul.errors import (
    ActorRequired, ArchiveIncomplete, ArchiveUnreadable, ConfigError, LoginThrottled, NotAuthenticated, NotFound,
    OperationRefused, PermissionDenied, ReplayOverCap, StoreError,
)
from tests.helpers import EngineHarness, adt, bearer, channel_yaml, file_destination_channel, free_port, send_one

PROBLEM = "application/problem+json"


@pytest.fixture
async def client(harness: EngineHarness, tmp_path: Path) -> httpx.AsyncClient:
    port = free_port()
    channels = {"adt.yaml": file_destination_channel("adt", port, tmp_path / "out"),
                "lab.yaml": channel_yaml("lab", free_port(), f"""\
                    - label: fhir
                      file: {{directory: {tmp_path / 'fhir'}}}
                    - label: lis-copy
                      order_by: accession
                      file: {{directory: {tmp_path / 'lis'}}}
                    """, message_types="[ORU^R01]")}
    engine = await harness.start(channels, http=True)
    await send_one(port, adt("V1-1", patient="MRV1"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
    assert harness.admin_token
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}", timeout=10,
                                 headers=bearer(harness.admin_token)) as http:
        yield http


async def test_v1_and_the_old_unversioned_paths_answer_the_same(client: httpx.AsyncClient) -> None:
    for path, params in (("/messages", {"patient_id": "MRV1"}), ("/destinations", {}), ("/audit-events", {}),
                         ("/dead-letters", {}), ("/archives", {}), ("/channels", {})):
        current = await client.get(f"/api/v1{path}", params=params)
        legacy = await client.get(f"/api{path}", params=params)
        assert current.status_code == legacy.status_code == 200, path
        assert current.json() == legacy.json(), path
    messages = (await client.get("/api/v1/messages", params={"patient_id": "MRV1"})).json()
    assert [m["control_id"] for m in messages["messages"]] == ["V1-1"]


async def test_channels_lists_what_runs(client: httpx.AsyncClient) -> None:
    channels = {c["name"]: c for c in (await client.get("/api/v1/channels")).json()}
    assert sorted(channels) == ["adt", "lab"]
    lab = channels["lab"]
    assert lab["source"].startswith("mllp:127.0.0.1:") and lab["port"] == int(lab["source"].rsplit(":", 1)[1])
    assert [(d["label"], d["connector"], d["order_by"]) for d in lab["destinations"]] == [
        ("fhir", "file", "patient"), ("lis-copy", "file", "accession")]


async def test_openapi_at_docs_documents_v1_only(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = (await client.get("/api/v1/openapi.json")).json()
    paths = set(schema["paths"])
    assert {"/api/v1/messages", "/api/v1/dead-letters/replay", "/api/v1/destinations/{channel}/{destination}/pause",
            "/api/v1/audit-events", "/api/v1/archives/restore", "/api/v1/channels", "/healthz"} <= paths
    assert not {p for p in paths if p.startswith("/api/") and not p.startswith("/api/v1/")}
    moved = await client.get("/api/docs", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/docs"


async def test_problems_follow_the_error_class(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/dead-letters/999999")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert missing.json() == {"type": "about:blank", "title": "Not found", "status": 404,
                              "detail": "no dead letter 999999"}

    anonymous = await client.post("/api/v1/destinations/adt/out/pause", json={"reason": "maintenance"},
                                  headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["title"] == "Not authenticated"

    unknown = await client.post("/api/v1/destinations/adt/nope/pause", json={"reason": "x"})
    assert unknown.status_code == 409 and unknown.json()["title"] == "Refused"
    assert "adt/nope" in unknown.json()["detail"]

    no_route = await client.get("/api/v1/nothing-here")
    assert no_route.status_code == 404 and no_route.headers["content-type"] == PROBLEM

    invalid = await client.get("/api/v1/dead-letters", params={"limit": "0"})
    assert invalid.status_code == 400 and invalid.json()["title"] == "Invalid request"


def test_status_comes_from_the_class_not_the_text() -> None:
    # The text of an error ("header is required" in the message) decides nothing.
    assert status_for(OperationRefused("the actor header is required")) == (409, "Refused")
    assert status_for(NotAuthenticated("anything"))[0] == 401
    assert status_for(PermissionDenied("anything"))[0] == 403
    assert status_for(LoginThrottled("anything"))[0] == 429
    assert status_for(ActorRequired("anything"))[0] == 400
    assert status_for(NotFound("no dead letter 1"))[0] == 404
    assert status_for(ReplayOverCap("over", preview={}))[0] == 409
    assert status_for(ArchiveUnreadable("damaged"))[0] == 503
    assert status_for(ArchiveIncomplete("disk full", report={}))[0] == 503
    assert status_for(StoreError("down"))[0] == 503
    assert status_for(ConfigError("SIMPUL_ARCHIVE_KEYS: entry 1 is not id:base64key"))[0] == 503
    assert status_for(RuntimeError("bug")) == (500, "Internal error")
