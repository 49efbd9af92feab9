"""`kill -9` of the `simpul dead-letters replay` command itself, at moments spread over its whole
run (start-up, loading channels, planning, the write transaction, printing). A replay is one
store transaction, so after every kill either all the dead letters were replayed or none; run
again, the replay completes, and the idempotent FHIR endpoint holds each Patient exactly once."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from simpul.mllp.sender import open_mllp_connection
from tests.dead_letters.support import fhir_engine_process, row_count, wait_until
from tests.helpers import SIMPUL_CLI, adt

COUNT = 150


async def _send_all(port: int) -> None:
    connection = await open_mllp_connection("127.0.0.1", port, response_timeout=10)
    try:
        for n in range(COUNT):
            await connection.send(adt(f"KC-{n}", patient=f"MRKC{n}"))
    finally:
        await connection.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_of_the_replay_command_replays_all_or_nothing_and_never_twice(tmp_path, fhir_server):
    mllp_port, url, settings, engine = fhir_engine_process(tmp_path, fhir_server.base_url, lease="2s")
    fhir_server.reject_next(COUNT)
    command = [str(SIMPUL_CLI), "dead-letters", "replay", "--channel", "adt", "--max", str(COUNT),
               "--reason", "receiver fixed", "--yes", "-c", str(settings)]
    engine.start()
    try:
        asyncio.run(_send_all(mllp_port))
        wait_until(lambda: row_count(url, "SELECT count(*) AS n FROM dead_letters") == COUNT,
                   "every rejected message is a dead letter", 60)
        killed_while_running = 0
        completed = False
        delay = 0.05
        while not completed and delay < 8:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed_while_running += 1
            process.wait(30)
            replayed = row_count(url, "SELECT count(*) AS n FROM replays")
            assert replayed in (0, COUNT), f"a killed replay left {replayed} of {COUNT} replays behind"
            assert row_count(url, "SELECT count(*) AS n FROM dead_letters WHERE status='replayed'") == replayed
            assert row_count(url, "SELECT count(*) AS n FROM deliveries") == COUNT + replayed
            completed = replayed == COUNT
            delay += 0.05
        assert killed_while_running >= 3, "the command finished before any kill landed"
        if not completed:
            assert subprocess.run(command, capture_output=True, timeout=60).returncode == 0
        # Running it again finds nothing open: a replay is never queued twice.
        again = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "nothing to replay" in again.stderr
        wait_until(lambda: row_count(url, "SELECT count(*) AS n FROM deliveries WHERE status='delivered'") == COUNT,
                   "every replay delivered", 60)
    finally:
        engine.stop()
    assert row_count(url, "SELECT count(*) AS n FROM replays") == COUNT
    patients = [p["identifier"][0]["value"] for p in fhir_server.resources("Patient")]
    assert sorted(patients) == sorted(f"MRKC{n}" for n in range(COUNT))
