"""The console's forms over plain HTTP: CSRF on every change, the same guards as the CLI,
MFA enrolment when it is required, and the admin's tokens page (a token shown once, that works)."""
from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pyotp

from simpul.access.passwords import hash_password
from simpul.access.users import create_user
from simpul.dead_letters.audit import Actor
from simpul.store.database import open_database
from tests.dead_letters.support import fhir_channel
from tests.helpers import EngineHarness, adt, bearer, free_port, send_one

PASSWORD = "night shift passphrase"


def add_user(database_url: str, name: str, role: str) -> None:
    db = open_database(database_url)
    try:
        with db.begin() as connection:
            create_user(connection, name=name, role=role, password_hash=hash_password(PASSWORD),
                        actor=Actor("test-setup", role="cli", client="tests"))
    finally:
        db.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def log_in(client: httpx.AsyncClient, name: str) -> httpx.Response:
    form = await client.get("/console/login")
    return await client.post("/console/login", data={"username": name, "password": PASSWORD,
                                                     "csrf_token": csrf_of(form.text)})


async def test_every_change_needs_the_csrf_token_and_keeps_the_guards(harness: EngineHarness, fhir_server: Any) -> None:
    port = free_port()
    fhir_server.reject_next(1)
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)}, http=True)
    await send_one(port, adt("FORM-1", patient="MRF1"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    dead_id = harness.sql("SELECT id FROM dead_letters")[0].id
    await asyncio.to_thread(add_user, harness.database_url, "ana", "operator")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}", timeout=10) as client:
        assert (await log_in(client, "ana")).status_code == 303
        page = await client.get(f"/console/dead-letters/{dead_id}")
        assert page.status_code == 200 and "MRF1" in page.text
        token = csrf_of(page.text)

        forged = await client.post(f"/console/dead-letters/{dead_id}/discard", data={"reason": "x"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        api_forged = await client.post("/api/v1/destinations/adt/fhir/pause", json={"reason": "x"})
        assert api_forged.status_code == 403
        api = await client.post("/api/v1/destinations/adt/fhir/pause", json={"reason": "maintenance"},
                                headers={"X-CSRF-Token": token})
        assert api.status_code == 200

        broken = await client.post(f"/console/dead-letters/{dead_id}/edit",
                                   data={"message": "not hl7", "reason": "typo", "csrf_token": token})
        assert broken.status_code == 409 and "<h1" in broken.text          # the CLI's guard, as a page
        done = await client.post(f"/console/dead-letters/{dead_id}/discard",
                                 data={"reason": "test message from vendor", "csrf_token": token})
        assert done.status_code == 303
    status = harness.sql("SELECT status, resolved_by FROM dead_letters")[0]
    assert (status.status, status.resolved_by) == ("discarded", "ana")
    actions = [r.action for r in harness.sql("SELECT action FROM audit_events WHERE actor='ana' ORDER BY id")]
    assert actions == ["login", "dead_letter.view", "destination.pause", "dead_letter.discard"]


async def test_required_mfa_makes_a_user_without_a_factor_enrol_totp_at_login_and_a_code_works_once(harness: EngineHarness) -> None:
    engine = await harness.start({}, http=True, auth={"require_mfa": True})
    await asyncio.to_thread(add_user, harness.database_url, "rudi", "operator")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}", timeout=10) as client:
        answer = await log_in(client, "rudi")
        assert answer.headers["location"] == "/console/login/totp"
        assert (await client.get("/api/v1/messages")).status_code == 401     # pending: nothing opens yet
        enrol = await client.get("/console/login/totp")
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol.text)
        assert secret, enrol.text
        wrong = await client.post("/console/login/totp", data={"code": "000000", "csrf_token": csrf_of(enrol.text)})
        assert wrong.status_code == 401
        code = pyotp.TOTP(secret.group(1)).now()
        passed = await client.post("/console/login/totp", data={"code": code, "csrf_token": csrf_of(enrol.text)})
        assert passed.status_code == 303 and passed.headers["location"] == "/console/"
        assert (await client.get("/api/v1/messages")).status_code == 200
    assert harness.sql("SELECT totp_secret FROM users WHERE name='rudi'")[0].totp_secret == secret.group(1)
    # The same code, seen over a shoulder, does not log in a second time.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}", timeout=10) as other:
        await log_in(other, "rudi")
        form = await other.get("/console/login/totp")
        replayed = await other.post("/console/login/totp", data={"code": code, "csrf_token": csrf_of(form.text)})
        assert replayed.status_code == 401
        assert (await other.get("/api/v1/messages")).status_code == 401


async def test_an_admin_makes_a_token_on_the_tokens_page_shown_once_and_it_works(harness: EngineHarness) -> None:
    engine = await harness.start({}, http=True)
    await asyncio.to_thread(add_user, harness.database_url, "dewi", "admin")
    base = f"http://127.0.0.1:{engine.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await log_in(client, "dewi")
        page = await client.get("/console/users")
        made = await client.post("/console/tokens", data={"name": "monitoring", "role": "viewer", "scope": "",
                                                          "expires_in_days": "30", "csrf_token": csrf_of(page.text)})
        token = re.search(r'id="new-token">(simpul_[^<]+)<', made.text)
        assert made.status_code == 200 and token and made.headers["cache-control"] == "no-store"
        assert token.group(1) not in (await client.get("/console/users")).text
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=bearer(token.group(1))) as monitoring:
        assert (await monitoring.get("/api/v1/destinations")).status_code == 200
        assert (await monitoring.get("/api/v1/messages")).status_code == 403
