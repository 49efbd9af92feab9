"""Retention on a running engine: archive (gzip, AES-256-GCM when asked) then remove, restore for
replay, and the guards: nothing leaves the store unarchived, unfinished work and open dead
letters stay, a failed archive write deletes nothing, keys rotate without losing old archives."""
from __future__ import annotations

import base64
import gzip
import json
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from simpul.engine.config.channel import RetentionPolicy
from tests.dead_letters.support import fhir_channel
from tests.dead_letters.test_cli import simpul
from tests.helpers import adt, free_port, send_one, store_execute, write_settings

DAY = 86400


def _retention(directory: Path | str, *, encrypt: bool = False, metadata: str | None = None) -> str:
    lines = ["retention:", "  content: 90d", f"  archive: {{directory: '{directory}', encrypt: {str(encrypt).lower()}}}"]
    if metadata:
        lines.insert(2, f"  metadata: {metadata}")
    return "\n".join(lines) + "\n"


def _retained_channel(port: int, base_url: str, retention: str, name: str = "adt") -> str:
    return fhir_channel(port, base_url, name=name) + retention


def _age_everything(database_url: str, days: int = 100) -> None:
    """Stage messages received `days` ago (the store's own clock is unix seconds)."""
    store_execute(database_url, "UPDATE messages SET received_at = received_at - :age", age=days * DAY)


def _count(harness, table: str) -> int:
    return harness.sql(f"SELECT count(*) AS n FROM {table}")[0].n


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def _delivered(harness, n: int) -> None:
    await harness.wait_for(lambda: _count(harness, "deliveries WHERE status='delivered'") == n)


async def test_archive_then_restore_round_trip_is_byte_exact_and_the_dead_letter_replays(
        store_harness, fhir_server, api_factory, tmp_path):
    harness = store_harness
    port = free_port()
    archive_dir = tmp_path / "archive"
    fhir_server.reject_next(1)
    engine = await harness.start({"adt.yaml": _retained_channel(port, fhir_server.base_url,
                                                                _retention(archive_dir))}, http=True)
    api = api_factory(engine)
    sent = {"RT-1": adt("RT-1", patient="MRRT1", name="Siregar^Ani"), "RT-2": adt("RT-2", patient="MRRT2")}
    for payload in sent.values():
        await send_one(port, payload)
    await harness.wait_for(lambda: _count(harness, "dead_letters") == 1 and
                           _count(harness, "deliveries WHERE status='delivered'") == 1)
    dead = harness.sql("SELECT id, control_id FROM dead_letters")[0]
    await api.post("/api/dead-letters/discard", {"ids": [dead.id], "reason": "sender will resend"})
    _age_everything(harness.database_url)

    preview = await api.post("/api/archives/run", {"dry_run": True})
    assert preview["messages_archived"] == 2 and _count(harness, "messages") == 2 and not archive_dir.exists()

    settings = write_settings(tmp_path, harness.database_url, http_port=0, channels_dir=harness.channels_dir)
    code, out, err = await simpul(settings, "archive", "run", "--json", "--actor", "records-office")
    assert code == 0, err
    report = json.loads(out)
    assert report["messages_archived"] == 2
    for table in ("messages", "deliveries", "delivery_attempts", "dead_letters"):
        assert _count(harness, table) == 0, table
    archive = harness.sql("SELECT id, path, sha256, messages, encrypted FROM archives")[0]
    data = Path(archive.path).read_bytes()
    header, body = data.split(b"\n", 1)
    assert json.loads(header)["encryption"] is None and archive.messages == 2 and archive.encrypted == 0
    assert b"RT-1" in gzip.decompress(body)                                  # compressed, readable with gzip
    # The audit chain's head of that moment is in the header, so a later cut of the trail shows.
    head = json.loads(header)["audit_chain_head"]
    assert head["hash"] == harness.sql("SELECT hash FROM audit_events WHERE id = :id", id=head["id"])[0].hash
    assert archive_dir in Path(archive.path).parents
    found = await api.get("/api/archives/entries", control_id="RT-1")
    assert [(e["archive_id"], e["patient_id"]) for e in found] == [(archive.id, "MRRT1")]
    audit = await api.get("/api/audit-events", action="retention.*")
    assert audit[0]["action"] == "retention.archive" and audit[0]["actor"] == "records-office"

    code, out, err = await simpul(settings, "archive", "restore", "--control-id", dead.control_id,
                                  "--reason", "ward asks for the lost ADT", "--actor", "budi", "--json")
    assert code == 0, err
    assert len(json.loads(out)["restored"]) == 1
    restored = harness.sql("SELECT id, raw, restored_at FROM messages")
    assert [bytes(row.raw) for row in restored] == [sent[dead.control_id]] and restored[0].restored_at
    entry = await api.get(f"/api/dead-letters/{dead.id}")
    assert entry["status"] == "discarded" and base64.b64decode(entry["raw_base64"]) == sent[dead.control_id]
    assert len(entry["attempts"]) == 1                                      # its history came back too
    # Restored, it can be replayed like any dead letter.
    await api.post("/api/dead-letters/replay", {"ids": [dead.id], "confirm": True, "reason": "resend restored"})
    await harness.wait_for(lambda: {p["identifier"][0]["value"] for p in fhir_server.resources("Patient")}
                           == {"MRRT1", "MRRT2"})
    # A restored message gets a fresh retention period: the next pass leaves it alone.
    again = await api.post("/api/archives/run", {})
    assert again["messages_archived"] == 0 and _count(harness, "messages") == 1
    actions = [e["action"] for e in await api.get("/api/audit-events", action="retention.*")]
    assert actions == ["retention.restore", "retention.archive"]
    code, out, err = await simpul(settings, "audit", "verify")
    assert code == 0 and "1 archived head(s) found in it" in out, out + err
    store_execute(harness.database_url, "DELETE FROM replays")          # rows that point at audit events
    store_execute(harness.database_url, f"DELETE FROM audit_events WHERE id >= {head['id']}")
    code, out, err = await simpul(settings, "audit", "verify")
    assert code == 1 and f"event {head['id']}, the chain head recorded in archive {archive.id}" in err, out + err
    assert "is gone" in err


async def test_encrypted_archive_needs_its_key_and_stays_readable_after_rotation(
        harness, fhir_server, api_factory, tmp_path, monkeypatch):
    port = free_port()
    old_key, new_key = _key(), _key()
    monkeypatch.setenv("SIMPUL_ARCHIVE_KEYS", f"k1:{old_key}")
    engine = await harness.start({"adt.yaml": _retained_channel(port, fhir_server.base_url,
                                                                _retention(tmp_path / "vault", encrypt=True))},
                                 http=True)
    api = api_factory(engine)
    original = adt("ENC-1", patient="MRSECRET", name="Wibowo^Sri")
    await send_one(port, original)
    await _delivered(harness, 1)
    _age_everything(harness.database_url)
    await api.post("/api/archives/run", {})
    archive = harness.sql("SELECT id, path, key_id, encrypted FROM archives")[0]
    assert (archive.key_id, archive.encrypted) == ("k1", 1)
    data = Path(archive.path).read_bytes()
    for secret in (b"MRSECRET", b"Wibowo", b"ENC-1"):
        assert secret not in data
    with pytest.raises(OSError):
        gzip.decompress(data.split(b"\n", 1)[1])                            # not even the gzip layer shows

    # Rotated, and the old key dropped: the archive cannot be read, nothing is restored.
    monkeypatch.setenv("SIMPUL_ARCHIVE_KEYS", f"k2:{new_key}")
    refused = await api.post("/api/archives/restore", {"archive_id": archive.id, "reason": "audit"}, expect=409)
    assert "'k1'" in refused["detail"] and "MRSECRET" not in refused["detail"]
    # A different key under the old id does not decrypt either.
    monkeypatch.setenv("SIMPUL_ARCHIVE_KEYS", f"k2:{new_key},k1:{_key()}")
    await api.post("/api/archives/restore", {"archive_id": archive.id, "reason": "audit"}, expect=503)
    assert _count(harness, "messages") == 0

    # Rotated with the old key kept: old archives read, new archives use the new key.
    monkeypatch.setenv("SIMPUL_ARCHIVE_KEYS", f"k2:{new_key},k1:{old_key}")
    done = await api.post("/api/archives/restore", {"patient_id": "MRSECRET", "reason": "audit"})
    assert len(done["restored"]) == 1
    assert bytes(harness.sql("SELECT raw FROM messages")[0].raw) == original
    await send_one(port, adt("ENC-2", patient="MRNEW"))
    await _delivered(harness, 2)
    store_execute(harness.database_url, "UPDATE messages SET received_at = received_at - :age, restored_at = NULL",
                  age=100 * DAY)
    await api.post("/api/archives/run", {})
    assert [row.key_id for row in harness.sql("SELECT key_id FROM archives ORDER BY id")] == ["k1", "k2"]


async def test_nothing_is_deleted_when_the_archive_cannot_be_written(harness, fhir_server, api_factory, tmp_path):
    port = free_port()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file: mkdir under it fails even for root")
    engine = await harness.start({"adt.yaml": _retained_channel(port, fhir_server.base_url,
                                                                _retention(blocker / "archive"))}, http=True)
    api = api_factory(engine)
    for n in range(3):
        await send_one(port, adt(f"NW-{n}", patient=f"MRNW{n}"))
    await _delivered(harness, 3)
    _age_everything(harness.database_url)
    response = await api.client.post("/api/archives/run", json={})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "nothing deleted" in response.json()["detail"]
    assert (_count(harness, "messages"), _count(harness, "deliveries"), _count(harness, "archives")) == (3, 3, 0)
    assert await api.get("/api/audit-events", action="retention.*") == []
    # The same from the CLI: a clear line and exit 1, no traceback.
    settings = write_settings(tmp_path, harness.database_url, http_port=0, channels_dir=harness.channels_dir)
    code, _, err = await simpul(settings, "archive", "run")
    assert code == 1 and "FAILED adt" in err and "Traceback" not in err
    assert _count(harness, "messages") == 3


async def test_retention_keeps_unfinished_deliveries_open_dead_letters_and_channels_without_a_policy(
        harness, fhir_server, api_factory, tmp_path):
    port, other_port = free_port(), free_port()
    fhir_server.reject_next(1)
    engine = await harness.start({
        "adt.yaml": _retained_channel(port, fhir_server.base_url, _retention(tmp_path / "archive")),
        "keep.yaml": fhir_channel(other_port, fhir_server.base_url, name="keep")}, http=True)
    api = api_factory(engine)
    await send_one(port, adt("U-DEAD", patient="MRU1"))                       # rejected: open dead letter
    await harness.wait_for(lambda: _count(harness, "dead_letters") == 1)
    await send_one(port, adt("U-DONE", patient="MRU2"))                       # delivered
    await send_one(other_port, adt("U-KEEP", patient="MRU3"))                 # no retention on its channel
    await _delivered(harness, 2)
    await api.post("/api/destinations/adt/fhir/pause", {"reason": "receiver maintenance"})
    await send_one(port, adt("U-WAIT", patient="MRU4"))                       # pending behind the pause
    await harness.wait_for(lambda: _count(harness, "deliveries WHERE status='pending'") == 1)
    _age_everything(harness.database_url)

    first = await api.post("/api/archives/run", {})
    assert first["messages_archived"] == 1
    assert sorted(r.control_id for r in harness.sql("SELECT control_id FROM messages")) == [
        "U-DEAD", "U-KEEP", "U-WAIT"]

    await api.post("/api/dead-letters/discard", {"control_id": "U-DEAD", "reason": "duplicate from sender"})
    await api.post("/api/destinations/adt/fhir/resume", {"reason": "maintenance over"})
    await _delivered(harness, 2)                  # U-KEEP and U-WAIT; U-DONE's rows left with its archive
    second = await api.post("/api/archives/run", {})
    assert second["messages_archived"] == 2
    assert [r.control_id for r in harness.sql("SELECT control_id FROM messages")] == ["U-KEEP"]


async def test_expired_index_entries_go_but_the_archive_still_restores_by_id(harness, fhir_server, api_factory,
                                                                             tmp_path):
    port = free_port()
    engine = await harness.start({"adt.yaml": _retained_channel(
        port, fhir_server.base_url, _retention(tmp_path / "archive", metadata="200d"))}, http=True)
    api = api_factory(engine)
    original = adt("IX-1", patient="MRIX")
    await send_one(port, original)
    await _delivered(harness, 1)
    _age_everything(harness.database_url, days=300)
    report = await api.post("/api/archives/run", {})
    assert report["messages_archived"] == 1 and report["index_entries_removed"] == {"adt": 1}
    assert await api.get("/api/archives/entries", control_id="IX-1") == []
    await api.post("/api/archives/restore", {"control_id": "IX-1", "reason": "lookup"}, expect=409)
    archive_id = (await api.get("/api/archives"))["items"][0]["id"]
    done = await api.post("/api/archives/restore", {"archive_id": archive_id, "reason": "court request"})
    assert len(done["restored"]) == 1 and bytes(harness.sql("SELECT raw FROM messages")[0].raw) == original


def test_retention_policy_needs_an_archive_and_metadata_outliving_content():
    with pytest.raises(ValidationError, match="archive"):
        RetentionPolicy.model_validate({"content": "30d"})
    with pytest.raises(ValidationError, match="metadata must be >= content"):
        RetentionPolicy.model_validate({"content": "90d", "metadata": "30d", "archive": {"directory": "a"}})
    policy = RetentionPolicy.model_validate({"archive": {"directory": "a"}})
    assert (policy.content, policy.metadata, policy.archive.encrypt) == (90 * 86400, None, False)


def test_a_malformed_key_is_named_without_printing_it():
    from simpul.dead_letters.archive import ArchiveKeys
    from simpul.errors import ConfigError

    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(ConfigError) as caught:
        ArchiveKeys.from_environment({"SIMPUL_ARCHIVE_KEYS": f"k9:{short}"})
    assert "'k9'" in str(caught.value) and "16 bytes" in str(caught.value) and short not in str(caught.value)
    assert ArchiveKeys.from_environment({}) is None
    keys = ArchiveKeys.from_environment({"SIMPUL_ARCHIVE_KEYS": f"new:{_key()}, old:{_key()}"})
    assert keys is not None and keys.current_id == "new" and set(keys.keys) == {"new", "old"}
