"""SATUSEHAT client against the simulator: the token's life, NIK lookup, refusals, rate limit."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from simpul.connectors.bpjs.satusehat_client import SatusehatClient
from simpul.connectors.bpjs.service import RateLimit, ServiceRejected, ServiceUnavailable

from tests.fakes.satusehat_sim import SatusehatSimulator

NIK = "3319022010800001"


@pytest.fixture
def sim() -> Iterator[SatusehatSimulator]:
    with SatusehatSimulator(token_lifetime=3600) as simulator:
        simulator.patients[NIK] = "P02478375538"
        yield simulator


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def client_for(sim: SatusehatSimulator, clock: Any = time.time, secret: str | None = None) -> SatusehatClient:
    return SatusehatClient(sim.auth_url, sim.fhir_url, sim.client_id, secret or sim.client_secret, timeout=2.0,
                           clock=clock)


def token_calls(sim: SatusehatSimulator) -> int:
    return sum(1 for seen in sim.requests if seen.path.startswith("/oauth2/v1/accesstoken"))


async def test_one_token_serves_many_calls_and_is_renewed_before_it_expires(sim: SatusehatSimulator) -> None:
    clock = Clock()
    client = client_for(sim, clock)
    for _ in range(3):
        assert await client.patient_ihs(NIK) == "P02478375538"
    assert token_calls(sim) == 1
    clock.offset = 3600 - 299          # inside the 300 s refresh margin: a new token before the old one dies
    await client.patient_ihs(NIK)
    assert token_calls(sim) == 2
    await client.close()


async def test_a_token_revoked_early_is_renewed_within_the_call(sim: SatusehatSimulator) -> None:
    client = client_for(sim)
    await client.patient_ihs(NIK)
    sim.expire_tokens()
    assert await client.patient_ihs(NIK) == "P02478375538"
    assert token_calls(sim) == 2
    await client.close()


async def test_refused_credentials_hold_the_next_token_request_back(sim: SatusehatSimulator,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(sim, secret="wrong-secret")
    with pytest.raises(ServiceRejected) as refused:
        await client.patient_ihs(NIK)
    assert refused.value.service_message == "Invalid client identifier"
    with pytest.raises(ServiceUnavailable, match="the next is allowed"):
        await client.patient_ihs(NIK)
    assert token_calls(sim) == 1                        # the second call did not ask again
    assert "wrong-secret" not in caplog.text and NIK not in caplog.text
    await client.close()


async def test_operation_outcome_text_is_the_refusal_message(sim: SatusehatSimulator) -> None:
    client = client_for(sim)
    with pytest.raises(ServiceRejected) as refused:
        await client.create({"resourceType": "Encounter", "subject": {"reference": "Patient/P02478375538"}})
    assert refused.value.service_message == "resource cannot be accessed due to business rule"
    await client.close()


async def test_unknown_nik_has_no_ihs_number(sim: SatusehatSimulator) -> None:
    client = client_for(sim)
    assert await client.patient_ihs("9999999999999999") is None
    [lookup] = [s for s in sim.requests if s.path.startswith("/fhir-r4/v1/Patient")]
    assert "%7C" in lookup.path                       # the token search's '|' goes URL-encoded
    await client.close()


async def test_rate_limit_spaces_the_calls() -> None:
    limit = RateLimit(20.0)
    started = time.monotonic()
    for _ in range(5):
        await limit.wait()
    assert time.monotonic() - started >= 0.19
