"""`kill -9` of the engine while it delivers a batch replay: after restart every replayed dead
letter is delivered and the idempotent FHIR endpoint holds each Patient once."""
from __future__ import annotations

import subprocess

import pytest

from tests.dead_letters.support import fhir_engine_process, row_count, wait_until
from tests.helpers import SIMPUL_CLI, adt

COUNT = 20


def _send(port: int, payload: bytes) -> None:
    import asyncio

    from tests.helpers import send_one
    asyncio.run(send_one(port, payload))


@pytest.mark.slow
def test_kill_9_while_delivering_a_replay_loses_nothing_and_duplicates_nothing(tmp_path, fhir_server):
    mllp_port, url, settings, engine = fhir_engine_process(tmp_path, fhir_server.base_url, lease="1s")
    fhir_server.reject_next(COUNT)
    engine.start()
    try:
        for n in range(COUNT):
            _send(mllp_port, adt(f"KR-{n}", patient=f"MRK{n}"))
        wait_until(lambda: row_count(url, "SELECT count(*) AS n FROM dead_letters") == COUNT,
                   "every rejected message is a dead letter", 30)
        fhir_server.delay(0.15)
        done = subprocess.run([str(SIMPUL_CLI), "dead-letters", "replay", "--channel", "adt", "--max", str(COUNT),
                               "--reason", "crash test", "--yes", "-c", str(settings)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        wait_until(lambda: row_count(url, "SELECT count(*) AS n FROM deliveries WHERE status='delivered'") >= 3,
                   "the replay is being delivered", 30)
        engine.kill()
        fhir_server.delay(0)
        engine.start()
        wait_until(lambda: row_count(url, "SELECT count(*) AS n FROM deliveries WHERE status='delivered'") == COUNT,
                   "every replay delivered after the restart", 30)
    finally:
        engine.stop()
    assert len(fhir_server.resources("Patient")) == COUNT
    assert row_count(url, "SELECT count(*) AS n FROM replays") == COUNT
    assert row_count(url, "SELECT count(*) AS n FROM dead_letters WHERE status='replayed'") == COUNT
