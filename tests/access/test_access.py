"""Users, roles, tokens and the audit hash chain, as an admin, an operator, a viewer and an
auditor meet them: through the real HTTP API of a running engine and the `simpul` command."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI

from simpul.access.roles import ROLES, Permission
from simpul.api import RESOURCE_ROUTERS, create_app
from simpul.api.auth import check_permissions_declared, declared_permission, requires
from simpul.dead_letters.audit import chain_head, verify_chain
from simpul.store.database import open_database
from tests.helpers import (
    SIMPUL_CLI, EngineHarness, adt, bearer, file_destination_channel, free_port, issue_token, send_one, write_settings,
)


def simpul(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SIMPUL_CLI), *args], input=stdin, capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env or {**os.environ, "SIMPUL_LOG_LEVEL": "WARNING"})


@pytest.fixture
async def running(harness: EngineHarness, tmp_path: Path) -> EngineHarness:
    port = free_port()
    await harness.start({"adt.yaml": file_destination_channel("adt", port, tmp_path / "out")}, http=True)
    await send_one(port, adt("ACC-1", patient="MRACC1"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
    return harness


def client(harness: EngineHarness, token: str | None) -> httpx.AsyncClient:
    assert harness.engine is not None
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{harness.engine.http_port}", timeout=10,
                             headers=bearer(token) if token else {})


# ---- every route declares its permission --------------------------------------------------------

def test_every_api_route_declares_a_permission_and_an_undeclared_one_is_refused() -> None:
    create_app(None)      # builds, so every route of the real app declares one
    declared = {route.path: declared_permission(route) for router in RESOURCE_ROUTERS for route in router.routes}
    assert declared["/messages/{message_id}"] == Permission.MESSAGES_READ
    assert declared["/dead-letters/replay"] == Permission.DEAD_LETTERS_WRITE
    assert declared["/users"] == Permission.USERS_ADMIN
    assert None not in declared.values()

    forgetful = APIRouter()

    @forgetful.get("/api/v1/orders")
    async def orders() -> list[str]:
        return []

    with pytest.raises(RuntimeError, match=r"\['GET'\] /api/v1/orders"):
        check_permissions_declared(FastAPI(), [forgetful])

    careful = APIRouter()

    @careful.get("/api/v1/orders", dependencies=[requires(Permission.MESSAGES_READ)])
    async def orders_ok() -> list[str]:
        return []

    check_permissions_declared(FastAPI(), [careful])


def test_roles_are_least_privilege() -> None:
    patient_data = {Permission.MESSAGES_READ, Permission.DEAD_LETTERS_READ, Permission.ARCHIVES_READ}
    assert not ROLES["viewer"] & patient_data and not ROLES["analyst"] & patient_data
    assert patient_data <= ROLES["operator"] and Permission.USERS_ADMIN not in ROLES["operator"]
    assert Permission.CHANNELS_READ in ROLES["analyst"] and Permission.DEAD_LETTERS_WRITE not in ROLES["analyst"]
    assert ROLES["admin"] == frozenset(Permission)


# ---- roles through the real API --------------------------------------------------------------------

async def test_a_viewer_sees_counts_but_never_message_content(running: EngineHarness) -> None:
    token = await asyncio.to_thread(issue_token, running.database_url, role="viewer", name="wallboard")
    message_id = running.sql("SELECT id FROM messages")[0].id
    async with client(running, token) as viewer:
        assert (await viewer.get("/api/v1/destinations")).status_code == 200
        assert (await viewer.get("/api/v1/dead-letters/counts")).status_code == 200
        for path in (f"/api/v1/messages/{message_id}", "/api/v1/messages", "/api/v1/dead-letters",
                     "/api/v1/users", "/api/v1/audit-events"):
            refused = await viewer.get(path, params={"patient_id": "MRACC1"} if path.endswith("messages") else {})
            assert refused.status_code == 403, path
            assert refused.headers["content-type"] == "application/problem+json"
            assert "MRACC1" not in refused.text
    async with client(running, None) as nobody:
        anonymous = await nobody.get("/api/v1/destinations")
        assert anonymous.status_code == 401 and anonymous.json()["title"] == "Not authenticated"
        assert (await nobody.get("/healthz")).status_code == 200          # monitoring's fixed address stays open
    async with client(running, "simpul_0000_forged") as forger:
        assert (await forger.get("/api/v1/destinations")).status_code == 401


async def test_an_operator_reads_content_and_every_look_is_an_audit_event(running: EngineHarness) -> None:
    token = await asyncio.to_thread(issue_token, running.database_url, role="operator", name="oncall")
    message_id = running.sql("SELECT id FROM messages")[0].id
    async with client(running, token) as operator:
        found = (await operator.get("/api/v1/messages", params={"patient_id": "MRACC1"})).json()
        assert [m["control_id"] for m in found["messages"]] == ["ACC-1"]
        shown = (await operator.get(f"/api/v1/messages/{message_id}")).json()
        assert "PID|1||MRACC1" in shown["raw"]
        assert shown["deliveries"][0]["attempts"][0]["outcome"] == "delivered"
        assert (await operator.get("/api/v1/users")).status_code == 403
        text = (await operator.get("/api/v1/messages", params={"text": "Suharto"})).json()
        assert text["count"] == 1
    rows = running.sql("SELECT actor, role, client, action, target, detail FROM audit_events ORDER BY id")
    looks = [(r.actor, r.role, r.client, r.action, r.target) for r in rows if r.action.startswith("message.")]
    assert looks == [("token:oncall", "operator", "127.0.0.1", "message.search", "messages"),
                     ("token:oncall", "operator", "127.0.0.1", "message.view", f"messages:{message_id}"),
                     ("token:oncall", "operator", "127.0.0.1", "message.search", "messages")]
    assert '"patient_id":"MRACC1"' in [r for r in rows if r.action == "message.search"][0].detail


async def test_a_token_scope_narrows_its_role_and_an_expired_or_revoked_token_is_refused(
        running: EngineHarness) -> None:
    scoped = await asyncio.to_thread(issue_token, running.database_url, role="operator", name="monitoring",
                                     scope="dashboard.read")
    short = await asyncio.to_thread(issue_token, running.database_url, role="admin", name="short", lifetime=4.0)
    made_at = time.monotonic()
    async with client(running, scoped) as monitoring:
        assert (await monitoring.get("/api/v1/destinations")).status_code == 200
        assert (await monitoring.get("/api/v1/messages")).status_code == 403
    async with client(running, short) as brief:
        assert (await brief.get("/api/v1/users")).status_code == 200
        await asyncio.sleep(max(0.0, made_at + 4.2 - time.monotonic()))
        expired = await brief.get("/api/v1/users")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    async with client(running, running.admin_token) as admin:
        made = await admin.post("/api/v1/tokens", json={"name": "erp", "role": "operator", "expires_in_days": 30})
        assert made.status_code == 201
        erp_token, token_id = made.json()["token"], made.json()["token_id"]
        listed = (await admin.get("/api/v1/tokens")).json()
        assert erp_token not in str(listed) and {t["token_id"] for t in listed} >= {token_id}
        async with client(running, erp_token) as erp:
            assert (await erp.get("/api/v1/messages")).status_code == 200
            assert (await admin.delete(f"/api/v1/tokens/{token_id}")).status_code == 200
            assert (await erp.get("/api/v1/messages")).status_code == 401
    stored = running.sql("SELECT secret_hash FROM api_tokens WHERE token_id = :t", t=token_id)[0]
    assert erp_token.rsplit("_", 1)[1] not in stored.secret_hash


# ---- the audit hash chain -----------------------------------------------------------------------

async def test_audit_verify_finds_a_changed_row_a_removed_row_and_a_removed_tail(
        running: EngineHarness, tmp_path: Path) -> None:
    token = await asyncio.to_thread(issue_token, running.database_url, role="operator", name="oncall")
    async with client(running, token) as operator:
        for _ in range(3):
            await operator.get("/api/v1/messages", params={"control_id": "ACC-1"})
        await operator.post("/api/v1/destinations/adt/out/pause", json={"reason": "receiver maintenance"})
        await operator.post("/api/v1/destinations/adt/out/resume", json={"reason": "done"})
    await running.stop()
    settings = write_settings(tmp_path, running.database_url, http_port=0, channels_dir=running.channels_dir)

    intact = simpul("audit", "verify", "-c", str(settings), cwd=tmp_path)
    assert intact.returncode == 0, intact.stderr
    assert "audit chain intact" in intact.stdout

    ids = [r.id for r in running.sql("SELECT id FROM audit_events ORDER BY id")]
    db = sa.create_engine(running.database_url)
    try:
        with db.begin() as connection:       # someone hides that a pause happened for a reason
            connection.execute(sa.text("UPDATE audit_events SET reason = 'routine' WHERE action = 'destination.pause'"))
        paused = running.sql("SELECT id FROM audit_events WHERE action='destination.pause'")[0].id
        changed = simpul("audit", "verify", "-c", str(settings), cwd=tmp_path)
        assert changed.returncode == 1
        assert f"event {paused}: its content does not match its hash" in changed.stderr

        with db.begin() as connection:
            connection.execute(sa.text("UPDATE audit_events SET reason = 'receiver maintenance' "
                                       "WHERE action = 'destination.pause'"))
            connection.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[2]})
        removed = simpul("audit", "verify", "-c", str(settings), cwd=tmp_path)
        assert removed.returncode == 1
        assert f"event {ids[3]}: its prev_hash does not match the hash of event {ids[1]}" in removed.stderr
    finally:
        db.dispose()

    # A removed tail leaves the table self-consistent: only a head recorded elsewhere shows it.
    store = open_database(running.database_url)
    try:
        with store.connect() as connection:
            head = chain_head(connection)
        with store.begin() as connection:
            connection.execute(sa.text("DELETE FROM audit_events WHERE id >= :id"), {"id": ids[2]})
        with store.connect() as connection:
            assert verify_chain(connection).ok
            report = verify_chain(connection, [("archive 7", head)])
        assert not report.ok and report.broken_at == head["id"]
        assert f"the chain head recorded in archive 7, is gone: the chain ends at event {ids[1]}" in report.problem
    finally:
        store.dispose()


def test_events_written_before_the_chain_existed_are_chained_by_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    from alembic import command
    from simpul.store.migrate import alembic_config

    db = sa.create_engine(url)
    config = alembic_config()
    with db.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        for n in range(3):
            connection.execute(sa.text("INSERT INTO audit_events (at, actor, action, target, reason, detail) "
                                       "VALUES (:at, 'ana', 'dead_letter.replay', 'dead_letters:1', 'fixed', '{}')"),
                               {"at": 1000.0 + n})
    db.dispose()
    store = open_database(url)
    try:
        with store.connect() as connection:
            report = verify_chain(connection)
        assert report.ok and report.checked == 3
    finally:
        store.dispose()


# ---- the first admin and the CLI ----------------------------------------------------------------

def test_no_default_password_the_console_refuses_to_start_without_an_admin(tmp_path: Path) -> None:
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(file_destination_channel("adt", free_port(), tmp_path / "out"))
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=free_port())
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIMPUL_ADMIN")}
    refused = subprocess.run([str(SIMPUL_CLI), "run", "-c", str(settings)], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path, env=environment)
    assert refused.returncode == 2
    assert "simpul users create NAME --admin" in refused.stderr and "Traceback" not in refused.stderr


def test_users_and_tokens_commands_make_a_working_admin_and_a_token_shown_once(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=0)
    short = simpul("users", "create", "root", "--admin", "--password-stdin", "-c", str(settings), cwd=tmp_path,
                   stdin="short\n")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    made = simpul("users", "create", "root", "--admin", "--password-stdin", "-c", str(settings), cwd=tmp_path,
                  stdin="a long enough passphrase\n")
    assert made.returncode == 0, made.stderr
    ana = simpul("users", "create", "ana", "--role", "operator", "--totp", "--password-stdin", "-c", str(settings),
                 cwd=tmp_path, stdin="another long passphrase\n")
    assert ana.returncode == 0 and "otpauth://totp/Simpul:ana?secret=" in ana.stdout
    listed = simpul("users", "list", "-c", str(settings), cwd=tmp_path)
    assert "root" in listed.stdout and "ana" in listed.stdout and "totp" in listed.stdout
    token = simpul("tokens", "create", "erp-reconciliation", "--role", "operator", "--scope", "messages.read",
                   "--expires", "30d", "-c", str(settings), cwd=tmp_path)
    assert token.returncode == 0 and token.stdout.startswith("simpul_")
    wide = simpul("tokens", "create", "x", "--role", "viewer", "--scope", "messages.read", "-c", str(settings),
                  cwd=tmp_path)
    assert wide.returncode == 1 and "a scope only narrows a role" in wide.stderr
    tokens = simpul("tokens", "list", "-c", str(settings), cwd=tmp_path)
    assert "erp-reconciliation" in tokens.stdout and token.stdout.strip() not in tokens.stdout
    last_admin = simpul("users", "set", "root", "--disable", "-c", str(settings), cwd=tmp_path)
    assert last_admin.returncode == 1 and "no enabled admin" in last_admin.stderr
    verify = simpul("audit", "verify", "-c", str(settings), cwd=tmp_path)
    assert verify.returncode == 0 and "3 events" in verify.stdout, verify.stdout + verify.stderr


async def test_a_channel_change_picked_up_by_hot_reload_is_an_audit_event(harness: EngineHarness, tmp_path: Path) -> None:
    port = free_port()
    await harness.start({"adt.yaml": file_destination_channel("adt", port, tmp_path / "out")}, reload_interval=0.1)
    await harness.wait_for(lambda: harness.sql("SELECT id FROM audit_events WHERE action='channels.load'"))
    harness.write_channel("lab.yaml", file_destination_channel("lab", free_port(), tmp_path / "lab"))
    harness.write_channel("adt.yaml", file_destination_channel("adt", port, tmp_path / "elsewhere"))

    def reloads() -> list[Any]:
        return harness.sql("SELECT actor, role, detail FROM audit_events WHERE action='channels.reload' ORDER BY id")

    def seen(key: str) -> set[str]:
        return {name for row in reloads() for name in json.loads(row.detail)[key]}

    # One reload or two (the files were written one after the other): either way both changes show.
    await harness.wait_for(lambda: "lab" in seen("added") and "adt" in seen("changed"))
    assert seen("removed") == set()
    assert {(row.actor, row.role) for row in reloads()} == {("simpul-engine", "system")}
    assert sorted(json.loads(reloads()[-1].detail)["channels"]) == ["adt", "lab"]
