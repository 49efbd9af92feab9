"""A worker whose delivery was taken over by another process cannot record its late outcome."""
from __future__ import annotations

import logging

from tests.fakes.fake_lis import FakeLis
from tests.helpers import EngineHarness, adt, channel_yaml, free_port, send_one, store_execute


async def test_a_stale_holders_late_outcome_is_refused_and_logged_without_phi(tmp_path, database_url, caplog):
    caplog.set_level(logging.WARNING, logger="simpul.delivery")
    harness = EngineHarness(tmp_path, database_url)
    async with FakeLis(ack_delay=1.5) as lis:
        port = free_port()
        try:
            await harness.start({"lis.yaml": channel_yaml("to-lis", port, f"""\
                - label: lis
                  mllp: {{host: 127.0.0.1, port: {lis.port}, response_timeout: 5s}}
                """)})
            await send_one(port, adt("STALE-1", patient="MR-SECRET-77", name="Rahasia^Siti"))
            await harness.wait_for(lambda: lis.received)
            # While the send is in flight, another process takes the delivery over (what its claim
            # writes when this worker's lease has run out) and is still sending it.
            assert store_execute(database_url, "UPDATE deliveries SET lease_owner = 'other-host:9', "
                                 "lease_token = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' WHERE status = 'in_flight'") == 1
            refused = await harness.wait_for(lambda: [r for r in caplog.records if r.getMessage().startswith(
                "delivery outcome refused")], timeout=10)
            row = harness.sql("SELECT status, lease_owner, lease_token, attempts FROM deliveries")[0]
            assert (row.status, row.lease_owner, row.lease_token, row.attempts) == (
                "in_flight", "other-host:9", "a" * 32, 0)
            assert harness.sql("SELECT count(*) AS n FROM delivery_attempts")[0].n == 0
            text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in refused)
            assert "MR-SECRET-77" not in text and "Rahasia" not in text
            assert refused[0].__dict__["outcome"] == "delivered"
        finally:
            await harness.stop()
