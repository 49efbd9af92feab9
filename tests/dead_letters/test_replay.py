"""Guarded replay against a real FHIR server: preview first, cap and confirmation, reason, one
Patient at an idempotent endpoint, links to the original, edit-and-replay, discard."""
from __future__ import annotations

import pytest

from tests.dead_letters.support import fhir_channel, patient_names
from tests.helpers import adt, free_port, send_one


@pytest.fixture
def harness(store_harness):
    """Replay, edit and discard run on both store backends (SQLite and PostgreSQL)."""
    return store_harness


async def _dead_lettered(harness, fhir_server, control_ids_and_patients, **channel):
    port = free_port()
    fhir_server.reject_next(len(control_ids_and_patients))
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url, **channel)}, http=True)
    for control_id, patient in control_ids_and_patients:
        await send_one(port, adt(control_id, patient=patient))
    await harness.wait_for(lambda: harness.sql("SELECT count(*) AS n FROM dead_letters")[0].n
                           == len(control_ids_and_patients))
    return engine


async def test_replay_previews_then_needs_a_permitted_caller_and_reason_then_delivers_once_linked(harness, fhir_server,
                                                                                     api_factory):
    engine = await _dead_lettered(harness, fhir_server, [("R-1", "MR1")])
    api = api_factory(engine)
    dead_id = harness.sql("SELECT id FROM dead_letters")[0].id

    preview = await api.post("/api/dead-letters/replay", {"ids": [dead_id]})
    assert preview["executed"] is False
    assert preview["preview"]["dead_letters"] == 1 and preview["preview"]["patients"] == ["MR1"]
    assert preview["preview"]["destinations"] == {"adt/fhir": 1}
    assert harness.sql("SELECT count(*) AS n FROM deliveries")[0].n == 1       # nothing queued by a preview

    no_reason = await api.post("/api/dead-letters/replay", {"ids": [dead_id], "confirm": True}, expect=409)
    assert "reason" in no_reason["detail"]
    anonymous = api_factory(engine, actor=None)
    await anonymous.post("/api/dead-letters/replay", {"ids": [dead_id], "confirm": True, "reason": "x"}, expect=401)
    viewer = api_factory(engine, actor="night-monitor", role="viewer")
    await viewer.post("/api/dead-letters/replay", {"ids": [dead_id], "confirm": True, "reason": "x"}, expect=403)

    done = await api.post("/api/dead-letters/replay",
                          {"ids": [dead_id], "confirm": True, "reason": "FHIR server fixed"})
    assert done["executed"] is True and len(done["delivery_ids"]) == 1
    await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
    assert patient_names(fhir_server) == {"MR1": "Suharto"}

    original, replay = harness.sql("SELECT id, status, payload, replay_of FROM deliveries ORDER BY id")
    assert original.status == "dead"                                       # history untouched
    assert replay.replay_of == original.id and bytes(replay.payload) == bytes(original.payload)
    link = harness.sql("SELECT * FROM replays")[0]
    assert (link.dead_letter_id, link.original_delivery_id, link.delivery_id) == (dead_id, original.id, replay.id)
    entry = await api.get(f"/api/dead-letters/{dead_id}")
    assert entry["status"] == "replayed" and entry["resolved_by"] == "token:oncall-ana"
    assert entry["replays"][0]["status"] == "delivered"
    audit = await api.get("/api/audit-events", action="dead_letter.replay")
    assert audit[0]["actor"] == "token:oncall-ana" and audit[0]["reason"] == "FHIR server fixed"
    assert audit[0]["detail"]["count"] == 1


async def test_replay_of_a_message_the_server_already_took_creates_no_second_patient(harness, fhir_server,
                                                                                     api_factory):
    # The server stores the Bundle but answers too late: the engine gives up (one attempt) and
    # dead-letters a message that in fact arrived. Replaying it must not create a second Patient.
    port = free_port()
    fhir_server.delay(2.5)
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)}, http=True)
    await send_one(port, adt("LATE-1", patient="MRLATE"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"), timeout=15)
    fhir_server.delay(0)
    assert len(fhir_server.resources("Patient")) == 1
    api = api_factory(engine)
    await api.post("/api/dead-letters/replay", {"control_id": "LATE-1", "confirm": True, "reason": "timeout"})
    await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
    assert len(fhir_server.resources("Patient")) == 1


async def test_batch_over_the_cap_is_refused_with_the_preview_and_nothing_is_queued(harness, fhir_server,
                                                                                    api_factory):
    engine = await _dead_lettered(harness, fhir_server, [(f"B-{n}", f"MRB{n}") for n in range(3)])
    api = api_factory(engine)
    refused = await api.post("/api/dead-letters/replay",
                             {"channel": "adt", "max": 2, "confirm": True, "reason": "bulk"}, expect=409)
    assert refused["preview"]["dead_letters"] == 3 and refused["preview"]["over_cap"] is True
    assert harness.sql("SELECT count(*) AS n FROM deliveries")[0].n == 3
    assert harness.sql("SELECT count(*) AS n FROM dead_letters WHERE status='open'")[0].n == 3
    # An empty filter is never "everything".
    empty = await api.post("/api/dead-letters/replay", {"confirm": True, "reason": "all"}, expect=409)
    assert "say what to replay" in empty["detail"]
    done = await api.post("/api/dead-letters/replay", {"channel": "adt", "max": 3, "confirm": True, "reason": "bulk"})
    assert len(done["delivery_ids"]) == 3
    await harness.wait_for(lambda: len(fhir_server.resources("Patient")) == 3)


async def test_dry_run_maps_and_sends_nothing(harness, fhir_server, api_factory):
    engine = await _dead_lettered(harness, fhir_server, [("DRY-1", "MRD")])
    api = api_factory(engine)
    requests_before = len(fhir_server.requests)
    answer = await api.post("/api/dead-letters/replay",
                            {"patient_id": "MRD", "dry_run": True, "confirm": True, "reason": "check"})
    assert answer["executed"] is False and answer["preview"]["deliveries"] == 1
    assert answer["preview"]["sample"][0]["bytes"] > 0 and answer["preview"]["problems"] == []
    assert harness.sql("SELECT count(*) AS n FROM deliveries")[0].n == 1
    assert len(fhir_server.requests) == requests_before


async def test_replay_to_a_shadow_destination_first(harness, fhir_server, api_factory, tmp_path):
    shadow = tmp_path / "shadow"
    more = f"- label: shadow\n  order_by: patient\n  file: {{directory: {shadow}}}\n"
    engine = await _dead_lettered(harness, fhir_server, [("SH-1", "MRS")], more_destinations=more)
    await harness.wait_for(lambda: len(list(shadow.glob("*.json"))) == 1)    # the normal shadow copy
    api = api_factory(engine)
    dead_id = harness.sql("SELECT id FROM dead_letters")[0].id
    await api.post("/api/dead-letters/replay", {"ids": [dead_id], "to_destination": "shadow", "confirm": True,
                                                "reason": "try on shadow first"})
    await harness.wait_for(lambda: len(list(shadow.glob("*.json"))) == 2)
    assert len(fhir_server.resources("Patient")) == 0                       # the real endpoint got nothing
    unknown = await api.post("/api/dead-letters/replay", {"ids": [dead_id], "to_destination": "nope",
                                                          "confirm": True, "reason": "x"}, expect=409)
    assert "nothing to replay" in unknown["detail"]


async def test_edit_keeps_the_original_and_replays_the_corrected_message(harness, fhir_server, api_factory):
    engine = await _dead_lettered(harness, fhir_server, [("ED-1", "MRE")])
    api = api_factory(engine)
    dead = harness.sql("SELECT id, raw FROM dead_letters")[0]
    fixed = bytes(dead.raw).decode().replace("Suharto^Budi", "Santoso^Budi").replace("\r", "\n")
    answer = await api.post(f"/api/dead-letters/{dead.id}/edit",
                            {"message": fixed, "reason": "family name typo at registration", "replay": True})
    assert answer["mapped"] is True and answer["replay"]["delivery_ids"]
    await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
    assert patient_names(fhir_server) == {"MRE": "Santoso"}
    entry = await api.get(f"/api/dead-letters/{dead.id}")
    assert "Suharto^Budi" in entry["raw"] and "Santoso^Budi" in entry["edits"][0]["raw"]
    assert entry["edits"][0]["actor"] == "token:oncall-ana"
    assert entry["replays"][0]["edit_id"] == entry["edits"][0]["id"]
    stored = harness.sql("SELECT raw FROM messages")[0]
    assert b"Suharto^Budi" in bytes(stored.raw)
    bad = await api.post(f"/api/dead-letters/{dead.id}/edit", {"message": "hello", "reason": "x"}, expect=409)
    assert "replayed" in bad["detail"] or "HL7v2" in bad["detail"]


async def test_discard_keeps_the_entry_searchable_and_audited_and_audit_cannot_be_changed(harness, fhir_server,
                                                                                          api_factory):
    engine = await _dead_lettered(harness, fhir_server, [("DI-1", "MRX"), ("DI-2", "MRY")])
    api = api_factory(engine)
    await api.post("/api/dead-letters/discard", {"patient_id": "MRX", "reason": "test message from vendor"})
    found = await api.get("/api/dead-letters", status="discarded")
    assert [row["control_id"] for row in found["items"]] == ["DI-1"]
    assert found["items"][0]["resolution"] == "test message from vendor"
    still_open = await api.get("/api/dead-letters", status="open")
    assert [row["control_id"] for row in still_open["items"]] == ["DI-2"]
    events = await api.get("/api/audit-events", action="dead_letter.discard")
    assert events[0]["actor"] == "token:oncall-ana" and events[0]["detail"]["count"] == 1
    for method in ("PUT", "PATCH", "DELETE"):
        response = await api.client.request(method, "/api/audit-events")
        assert response.status_code == 405
        response = await api.client.request(method, f"/api/audit-events/{events[0]['id']}")
        assert response.status_code in (404, 405)
