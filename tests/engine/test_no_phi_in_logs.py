"""Patient data stays out of the logs: every log line the engine writes while it accepts,
rejects, maps, fails to map, retries and dead-letters messages is checked for the patient's
name, identifiers, birth date and address."""
from __future__ import annotations

import logging

import pytest

from simpul.engine.logs import JsonFormatter
from tests.helpers import adt, channel_yaml, free_port, send_one, send_raw

NAME_FAMILY, NAME_GIVEN = "Wiryawanxq", "Kusumaningsihqz"
MRN, VISIT, BIRTH = "MRPHI9931", "VPHI7712", "19770412"
ADDRESS = "Jl. Rahasia 77"


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
    fhir_server.reject_next(1)                     # one dead letter with an OperationOutcome
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
