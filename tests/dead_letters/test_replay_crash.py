"""`kill -9` of the engine while it delivers a batch replay: after restart every replayed dead
letter is delivered and the idempotent FHIR endpoint holds each Patient once."""
from __future__ import annotations

import subprocess
import time

import pytest

from tests.dead_letters.support import fhir_channel
from tests.helpers import SIMPUL_CLI, EngineProcess, adt, free_port, store_rows, write_settings

COUNT = 20


def _wait(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        time.sleep(0.05)


def _send(port: int, payload: bytes) -> None:
    import asyncio

    from tests.helpers import send_one
    asyncio.run(send_one(port, payload))


@pytest.mark.slow
def test_kill_9_while_delivering_a_replay_loses_nothing_and_duplicates_nothing(tmp_path, fhir_server):
    mllp_port = free_port()
    url = f"sqlite:///{tmp_path / 'simpul.db'}"
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(fhir_channel(mllp_port, fhir_server.base_url))
    settings = write_settings(tmp_path, url, http_port=free_port(), lease="1s")
    engine = EngineProcess(settings, mllp_port, tmp_path / "engine.log")
    fhir_server.reject_next(COUNT)
    engine.start()
    try:
        for n in range(COUNT):
            _send(mllp_port, adt(f"KR-{n}", patient=f"MRK{n}"))
        _wait(lambda: store_rows(url, "SELECT count(*) AS n FROM dead_letters")[0].n == COUNT,
              "every rejected message is a dead letter")
        fhir_server.delay(0.15)
        done = subprocess.run([str(SIMPUL_CLI), "dead-letters", "replay", "--channel", "adt", "--max", str(COUNT),
                               "--reason", "crash test", "--yes", "-c", str(settings)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        _wait(lambda: store_rows(url, "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n >= 3,
              "the replay is being delivered")
        engine.kill()
        fhir_server.delay(0)
        engine.start()
        _wait(lambda: store_rows(url, "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n == COUNT,
              "every replay delivered after the restart")
    finally:
        engine.stop()
    assert len(fhir_server.resources("Patient")) == COUNT
    assert store_rows(url, "SELECT count(*) AS n FROM replays")[0].n == COUNT
    assert store_rows(url, "SELECT count(*) AS n FROM dead_letters WHERE status='replayed'")[0].n == COUNT
