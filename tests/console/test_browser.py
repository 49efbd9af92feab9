"""The console in a real browser (Debian Chromium driven by Playwright, no `playwright install`).

On-call staff log in with a password and a TOTP code, find the failed message, replay it and see
it delivered; a viewer cannot open message content (page and API both 403); every action is in
the audit chain and the chain verifies; failed logins are throttled.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from simpul.access.passwords import hash_password
from simpul.access.users import create_user
from simpul.dead_letters.audit import Actor, verify_chain
from simpul.store.database import open_database
from tests.dead_letters.support import fhir_channel
from tests.helpers import EngineHarness, adt, free_port, send_one

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "night shift passphrase"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed "
                                                                "(scripts/test.sh installs it)")


def add_user(database_url: str, name: str, role: str, totp_secret: str | None = None) -> None:
    db = open_database(database_url)
    try:
        with db.begin() as connection:
            create_user(connection, name=name, role=role, password_hash=hash_password(PASSWORD),
                        totp_secret=totp_secret, actor=Actor("test-setup", role="cli", client="tests"))
    finally:
        db.dispose()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def log_in(page: Any, base: str, name: str, *, totp: str | None = None) -> None:
    await page.goto(f"{base}/console/login")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login")
    if totp is not None:
        await page.wait_for_url(f"{base}/console/login/totp")
        await page.fill("input[name=code]", pyotp.TOTP(totp).now())
        await page.click("#verify")
    await page.wait_for_url(f"{base}/console/")


async def test_oncall_logs_in_with_totp_replays_a_failed_message_and_sees_it_delivered(
        harness: EngineHarness, fhir_server: Any, browser: Any) -> None:
    port = free_port()
    fhir_server.reject_identifier("MRB1", "Patient.birthDate: invalid")
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)}, http=True)
    await send_one(port, adt("BROWSER-1", patient="MRB1"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    secret = pyotp.random_base32()
    await asyncio.to_thread(add_user, harness.database_url, "ana", "operator", secret)
    await asyncio.to_thread(add_user, harness.database_url, "wati", "viewer")
    # localhost, not 127.0.0.1: the name a browser treats as a secure context for cookies and WebAuthn.
    base = f"http://localhost:{engine.http_port}"

    oncall = await browser.new_page()
    await log_in(oncall, base, "ana", totp=secret)
    assert "ana (operator)" in await oncall.inner_text("#whoami")
    assert "adt / fhir" in await oncall.inner_text("#destinations")

    # Find the failed message by its control id (a POST: nothing typed ends up in the URL).
    await oncall.click("text=Messages")
    await oncall.fill("input[name=control_id]", "BROWSER-1")
    await oncall.click("#find")
    assert "1 message(s)" in await oncall.inner_text("#found")
    assert "BROWSER-1" not in oncall.url and "MRB1" not in oncall.url
    await oncall.click("#results >> text=BROWSER-1")
    assert "PID-3 Patient Identifier List MRB1^^^RSUD^MR" in await oncall.inner_text("#segments")
    assert "dead" in await oncall.inner_text(".delivery-status")
    assert "Patient.birthDate: invalid" in await oncall.inner_text(".delivery")

    # The sender fixed it: replay from the dead letter's page, with a reason.
    fhir_server.clear_identifier("MRB1")
    await oncall.click("text=/dead letter \\d+/")
    await oncall.fill("input[name=reason]", "FHIR server accepts the birth date now")
    await oncall.click("#replay")
    assert await oncall.inner_text("#dead-letter-status") == "replayed"
    for _ in range(100):
        await oncall.reload()
        if "delivered" in await oncall.inner_text("#replays"):
            break
        await asyncio.sleep(0.1)
    assert "delivered" in await oncall.inner_text("#replays")
    message_id = harness.sql("SELECT id FROM messages WHERE control_id='BROWSER-1'")[0].id
    await oncall.goto(f"{base}/console/messages/{message_id}")
    statuses = [await s.inner_text() for s in await oncall.query_selector_all(".delivery-status")]
    assert statuses == ["dead", "delivered"]
    assert [p["identifier"][0]["value"] for p in fhir_server.resources("Patient")] == ["MRB1"]

    # A viewer sees the dashboard but not the message: the page and the API both answer 403.
    viewer = await browser.new_page()
    await log_in(viewer, base, "wati")
    assert "Messages" not in await viewer.inner_text("header nav")
    refused = await viewer.goto(f"{base}/console/messages/{message_id}")
    assert refused is not None and refused.status == 403
    assert "MRB1" not in await viewer.content()
    api = await viewer.request.get(f"{base}/api/v1/messages/{message_id}")
    assert api.status == 403 and "MRB1" not in await api.text()

    # Log out ends the session: the cookie no longer opens anything.
    await oncall.click("text=Log out")
    await oncall.wait_for_url(f"{base}/console/login")
    assert (await oncall.request.get(f"{base}/api/v1/destinations")).status == 401

    # Every step is in the audit chain, with who, role and address, and the chain verifies.
    events = harness.sql("SELECT actor, role, client, action, target FROM audit_events ORDER BY id")
    ana = [(e.action, e.target) for e in events if e.actor == "ana"]
    assert ("login", "users:ana") in ana and ("login.second_factor", "users:ana") in ana
    assert ("message.search", "messages") in ana and ("message.view", f"messages:{message_id}") in ana
    dead_id = harness.sql("SELECT id FROM dead_letters")[0].id
    assert ("dead_letter.view", f"dead_letters:{dead_id}") in ana
    assert ("dead_letter.replay", f"dead_letters:{dead_id}") in ana and ana[-1] == ("logout", "users:ana")
    assert {(e.role, e.client) for e in events if e.actor == "ana"} == {("operator", "127.0.0.1")}
    assert ("wati", "login") in {(e.actor, e.action) for e in events}
    db = open_database(harness.database_url)
    try:
        with db.connect() as connection:
            assert verify_chain(connection).ok
    finally:
        db.dispose()


async def test_login_is_throttled_per_user_name_and_a_neighbour_still_logs_in(harness: EngineHarness, tmp_path: Path,
                                                                       browser: Any) -> None:
    engine = await harness.start({}, http=True, auth={"max_failures_per_user": 3, "max_failures_per_client": 50})
    secret = pyotp.random_base32()
    await asyncio.to_thread(add_user, harness.database_url, "budi", "operator", secret)
    base = f"http://localhost:{engine.http_port}"
    page = await browser.new_page()
    for _ in range(3):
        await page.goto(f"{base}/console/login")
        await page.fill("input[name=username]", "budi")
        await page.fill("input[name=password]", "not the password")
        await page.click("#login")
        assert "Wrong user name or password" in await page.inner_text("#error")
    await page.goto(f"{base}/console/login")
    await page.fill("input[name=username]", "budi")
    await page.fill("input[name=password]", PASSWORD)          # right, but too late
    async with page.expect_response(re.compile(r".*/console/login$")) as answer:
        await page.click("#login")
    assert (await answer.value).status == 429
    assert "too many failed logins for this user" in await page.content()
    # Another user from the same address is not locked out by budi's failures.
    await asyncio.to_thread(add_user, harness.database_url, "sari", "viewer")
    await log_in(page, base, "sari")
    failed = harness.sql("SELECT count(*) AS n FROM audit_events WHERE action='login.failed' AND actor='budi'")[0].n
    assert failed == 4


async def test_the_console_answers_with_security_headers_and_without_secrets_in_urls(harness: EngineHarness) -> None:
    engine = await harness.start({}, http=True)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}") as client:
        login = await client.get("/console/login")
        assert login.status_code == 200
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        assert login.headers["cache-control"] == "no-store"
        assert 'method="post"' in login.text
        home = await client.get("/console/", follow_redirects=False)
        assert home.status_code == 303 and home.headers["location"] == "/console/login"
        forged = await client.post("/console/login", data={"username": "x", "password": "y", "csrf_token": "z"})
        assert forged.status_code == 403


async def test_a_security_key_registers_and_then_is_the_second_factor(harness: EngineHarness, browser: Any) -> None:
    """WebAuthn end to end with Chromium's virtual authenticator (a software FIDO2 key, via CDP)."""
    engine = await harness.start({}, http=True)
    await asyncio.to_thread(add_user, harness.database_url, "dewi", "admin")
    base = f"http://localhost:{engine.http_port}"
    page = await browser.new_page()
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": False, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})

    await log_in(page, base, "dewi")                   # no factor yet: the password is enough
    await page.click("#webauthn-register")
    # A selector, not wait_for_function: the console's CSP forbids the eval that one needs.
    await page.wait_for_selector("text=Register a security key (WebAuthn) >> xpath=.. >> text=registered")
    assert harness.sql("SELECT count(*) AS n FROM webauthn_credentials")[0].n == 1
    await page.click("text=Log out")

    await page.goto(f"{base}/console/login")
    await page.fill("input[name=username]", "dewi")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/console/login/totp")
    # Pending: the password alone opens nothing.
    assert (await page.request.get(f"{base}/api/v1/users")).status == 401
    await page.click("#webauthn-login")
    await page.wait_for_url(f"{base}/console/")
    assert (await page.request.get(f"{base}/api/v1/users")).status == 200
    factors = [row.detail for row in harness.sql(
        "SELECT detail FROM audit_events WHERE action IN ('mfa.enrol', 'login.second_factor') ORDER BY id")]
    assert ['"factor":"webauthn"' in d for d in factors] == [True, True]
    assert harness.sql("SELECT sign_count FROM webauthn_credentials")[0].sign_count >= 1
