"""`kill -9` of the engine while it delivers a batch replay: after restart every replayed dead
letter is delivered, and the FHIR server received each replayed Bundle once, or twice only when
the kill cut its send (received, answer never read).

The kill must land while replay deliveries are still outstanding; the test asserts that from the
store the dead engine left behind, so it cannot pass by killing an engine that had finished.
"""
from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from tests.dead_letters.support import fhir_engine_process, row_count, wait_until
from tests.helpers import SIMPUL_CLI, adt, store_rows

COUNT = 20
# Each answer is held back this long, so the batch takes several rounds of max_in_flight (8).
ANSWER_DELAY = 0.5


def _send(port: int, payload: bytes) -> None:
    import asyncio

    from tests.helpers import send_one
    asyncio.run(send_one(port, payload))


def _posted_patients(fhir_server, requests) -> Counter[str]:
    """MRN -> how many Bundles for it the server received (answered or cut by the kill)."""
    counts: Counter[str] = Counter()
    for request in requests:
        if request.method != "POST" or not request.body:
            continue
        for entry in request.json.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "Patient":
                counts[resource["identifier"][0]["value"]] += 1
    return counts


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
        rejected_requests = len(fhir_server.requests)
        fhir_server.delay(ANSWER_DELAY)
        done = subprocess.run([str(SIMPUL_CLI), "dead-letters", "replay", "--channel", "adt", "--max", str(COUNT),
                               "--reason", "crash test", "--yes", "-c", str(settings)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        wait_until(lambda: row_count(url, "SELECT count(*) AS n FROM deliveries WHERE status='delivered'") >= 3,
                   "the replay is being delivered", 30)
        engine.kill()
        # What the dead engine left: the replay was still under way, some of it in flight.
        at_kill = {row.patient_id: row.status for row in store_rows(
            url, "SELECT m.patient_id, d.status FROM deliveries d JOIN messages m ON m.id = d.message_id "
                 "WHERE d.replay_of IS NOT NULL")}
        assert len(at_kill) == COUNT
        outstanding = {mrn for mrn, status in at_kill.items() if status != "delivered"}
        assert outstanding, "the kill landed after the replay had finished: it tested nothing"
        cut = {mrn for mrn, status in at_kill.items() if status == "in_flight"}
        fhir_server.delay(0)
        engine.start()
        wait_until(lambda: row_count(url, "SELECT count(*) AS n FROM deliveries WHERE status='delivered'") == COUNT,
                   "every replay delivered after the restart", 30)
    finally:
        engine.stop()
    posted = _posted_patients(fhir_server, fhir_server.requests[rejected_requests:])
    assert set(posted) == {f"MRK{n}" for n in range(COUNT)}
    sent_twice = {mrn for mrn, n in posted.items() if n > 1}
    # Sent again only where the kill cut the send, and never more than once again.
    assert sent_twice <= cut, f"replayed Bundles sent twice without a kill between: {sorted(sent_twice - cut)}"
    assert max(posted.values()) <= 2
    assert len(fhir_server.resources("Patient")) == COUNT
    assert row_count(url, "SELECT count(*) AS n FROM replays") == COUNT
    assert row_count(url, "SELECT count(*) AS n FROM dead_letters WHERE status='replayed'") == COUNT
    # One replay delivery per dead letter, however often the engine died.
    assert row_count(url, "SELECT count(*) AS n FROM deliveries WHERE replay_of IS NOT NULL") == COUNT
    assert row_count(url, "SELECT count(*) AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id "
                          "WHERE d.replay_of IS NOT NULL AND a.outcome = 'delivered'") == COUNT
