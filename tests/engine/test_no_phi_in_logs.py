"""Patient data stays out of the logs: every log line the engine writes while it accepts,
rejects, maps, fails to map, retries and dead-letters messages is checked for the patient's
name, identifiers, birth date and address.

The receiver's rejection text carries that patient data too (FHIR servers echo what they were
sent), so a connector that logged it, or stored it as the error, would fail here. The full run
is a real `simpul run` in the two-process layout (ingest process, mapping worker process, HTTP
API) in both log formats, `text` included: it prints tracebacks, which carry exception messages.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest

from simpul.engine.logs import JsonFormatter
from tests.fakes.fhir_server import FakeFhirServer
from tests.helpers import (
    bearer, issue_token,
    EngineProcess, adt, channel_yaml, free_port, send_one, send_raw, store_rows, write_settings,
)

NAME_FAMILY, NAME_GIVEN = "Wiryawanxq", "Kusumaningsihqz"
MRN, VISIT, BIRTH = "MRPHI9931", "VPHI7712", "19770412"
ADDRESS = "Jl. Rahasia 77"


SECRETS = (NAME_FAMILY, NAME_GIVEN, MRN, VISIT, BIRTH, ADDRESS)
# What a FHIR server says when it refuses a Patient: it echoes the data it refused.
REJECTION = (f"Patient {NAME_FAMILY}, {NAME_GIVEN} (born {BIRTH}, {ADDRESS}) conflicts with "
             f"identifier {MRN} in encounter {VISIT}")


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def patient_message(control_id: str, event: str = "A01") -> bytes:
    text = adt(control_id, patient=MRN, visit=VISIT, name=f"{NAME_FAMILY}^{NAME_GIVEN}", event=event).decode()
    text = text.replace("19800517", BIRTH).replace("|M\r", f"|M|||{ADDRESS}^^Jakarta\r")
    message = text.encode()
    for secret in (NAME_FAMILY, NAME_GIVEN, MRN, VISIT, BIRTH, ADDRESS):
        assert secret.encode() in message
    return message


@pytest.fixture
def all_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.set_level(logging.DEBUG)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler = Collect()
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


async def test_no_patient_data_in_any_log_line(harness, fhir_server, all_log_lines):
    port = free_port()
    fhir_server.reject_next(1, REJECTION)          # one dead letter with an OperationOutcome
    await harness.start({"adt.yaml": channel_yaml("adt", port, f"""\
        - label: fhir
          fhir_server: {{base_url: "{fhir_server.base_url}", timeout: 2s}}
          retry: {{max_attempts: 2, initial_delay: 20ms, max_delay: 50ms}}
        """)})
    await send_one(port, patient_message("PHI-1"))                      # rejected by the server: dead letter
    await send_one(port, patient_message("PHI-1"))                      # duplicate
    await send_one(port, patient_message("PHI-2", event="A08"))         # delivered
    await send_raw(port, patient_message("PHI-3").replace(b"|PHI-3|", b"||"))      # AR: no MSH-10
    unmappable = patient_message("PHI-4").replace(b"ADT^A01^ADT_A01", b"QRY^A19^QRY_A19")
    await send_one(port, unmappable)                                     # dead letter at the mapping stage
    await harness.wait_for(lambda: harness.sql("SELECT count(*) AS n FROM dead_letters")[0].n == 2)
    fhir_server.stop()                                                   # retries, then a dead letter
    await send_one(port, patient_message("PHI-5", event="A08"))
    await harness.wait_for(lambda: harness.sql("SELECT count(*) AS n FROM dead_letters")[0].n == 3)
    await harness.stop()

    assert len(all_log_lines) > 10                 # the engine did log what happened
    text = "\n".join(all_log_lines)
    assert "PHI-1" in text                         # control ids are logged (that is how staff find things)
    for secret in (NAME_FAMILY, NAME_GIVEN, MRN, VISIT, BIRTH, ADDRESS):
        assert secret not in text, f"{secret!r} appeared in a log line"


async def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_no_patient_data_in_logs_errors_or_problems_of_the_two_process_engine(
        tmp_path: Path, fhir_server: FakeFhirServer, monkeypatch: pytest.MonkeyPatch, log_format: str) -> None:
    mllp_port, http_port = free_port(), free_port()
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(channel_yaml("adt", mllp_port, f"""\
        - label: fhir
          fhir_server: {{base_url: "{fhir_server.base_url}", timeout: 2s}}
          retry: {{max_attempts: 2, initial_delay: 20ms, max_delay: 50ms}}
        """))
    database_url = f"sqlite:///{tmp_path / 'simpul.db'}"
    settings = write_settings(tmp_path, database_url, http_port=http_port)
    monkeypatch.setenv("SIMPUL_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SIMPUL_LOG_FORMAT", log_format)
    log_file = tmp_path / "engine.log"
    engine = EngineProcess(settings, mllp_port, log_file)

    def dead_letters() -> int:
        return int(store_rows(database_url, "SELECT count(*) AS n FROM dead_letters")[0].n)

    problems: list[str] = []
    await asyncio.to_thread(engine.start)
    try:
        fhir_server.reject_identifier(MRN, REJECTION)
        await send_one(mllp_port, patient_message("PHI-1"))                   # rejected, PHI in the reason
        await send_one(mllp_port, patient_message("PHI-1"))                   # duplicate
        await send_raw(mllp_port, patient_message("PHI-3").replace(b"|PHI-3|", b"||"))   # AR: no MSH-10
        await send_raw(mllp_port, patient_message("PHI-6").replace(b"EVN|", b"EVN|\x00"))  # AR: binary data
        unmappable = patient_message("PHI-4").replace(b"ADT^A01^ADT_A01", b"QRY^A19^QRY_A19")
        await send_one(mllp_port, unmappable)                                  # mapping-stage dead letter
        await _wait_for(lambda: dead_letters() == 2)
        fhir_server.clear_identifier(MRN)
        await send_one(mllp_port, patient_message("PHI-2", event="A08"))      # delivered
        await _wait_for(lambda: store_rows(database_url, "SELECT id FROM deliveries WHERE status='delivered'"))
        fhir_server.stop()                                                     # retries, then a dead letter
        await send_one(mllp_port, patient_message("PHI-5", event="A08"))
        await _wait_for(lambda: dead_letters() == 3)

        token = await asyncio.to_thread(issue_token, database_url)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10,
                                     headers=bearer(token)) as client:
            async def problem(method: str, url: str, **kwargs: object) -> None:
                response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
                assert response.status_code >= 400, (url, response.status_code)
                assert response.headers["content-type"].startswith("application/problem+json")
                body = response.json()
                # title and detail explain the refusal; a replay preview (`preview`) lists the
                # matching dead letters on purpose: that is what on-call staff asked for.
                problems.append(f"{body['title']}: {body.get('detail', '')}")

            # Requests that carry patient data where it does not belong: the refusals must not echo it.
            await problem("GET", "/api/messages", params={"patient_id": MRN, "since": NAME_FAMILY})
            await problem("GET", "/api/dead-letters", params={"patient_id": MRN, "limit": BIRTH})
            await problem("POST", "/api/dead-letters/replay",
                          json={"patient_id": MRN, "confirm": True, "reason": NAME_GIVEN},
                          headers={"Authorization": ""})                                   # not logged in
            await problem("POST", "/api/dead-letters/replay",
                          json={"patient_id": MRN, "confirm": True, "reason": ADDRESS, "max": 1})  # over the cap
            await problem("POST", "/api/dead-letters/replay",
                          json={"patient_id": MRN, "visit": VISIT, "confirm": True})
            await problem("GET", f"/api/dead-letters/{MRN}")
    finally:
        assert await asyncio.to_thread(engine.stop) == 0

    log = log_file.read_text(errors="replace")
    assert "PHI-1" in log and "PHI-5" in log        # the engine did log these messages, by control id
    assert "delivery attempt failed" in log and "mapping failed" in log and "message rejected" in log
    leaked_lines = [line for line in log.splitlines() if _leaks(line)]
    assert not leaked_lines, f"patient data in the log: {leaked_lines[:3]}"
    errors = store_rows(database_url, "SELECT error FROM dead_letters UNION ALL "
                                      "SELECT error FROM delivery_attempts WHERE error IS NOT NULL")
    assert len(errors) >= 4
    assert not [row.error for row in errors if _leaks(row.error)], "patient data in a stored error"
    assert len(problems) == 6
    assert not [text for text in problems if _leaks(text)], f"patient data in a problem response: {problems}"
