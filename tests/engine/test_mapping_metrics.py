"""/metrics counts, per channel, what mapped messages held that no map used, and unmatched patients."""
from __future__ import annotations

from pathlib import Path

import httpx

from tests.engine.test_http_api import samples
from tests.helpers import EngineHarness, file_destination_channel, free_port, send_one


async def test_metrics_count_unmapped_fields_and_unmatched_patients(harness: EngineHarness, tmp_path: Path) -> None:
    port = free_port()
    engine = await harness.start({"adt.yaml": file_destination_channel("adt", port, tmp_path / "out")}, http=True)
    # PID-3 without an assigning authority: no safe match key. PV1-51 (visit indicator) is valued
    # but no map reads it.
    for i in range(2):
        message = (f"MSH|^~\\&|SIMRS|RSUD|HUB|HUB|20240115083000+0700||ADT^A01|MET-{i}|P|2.5.1\r"
                   f"EVN|A01|20240115083000+0700\rPID|1||448812||Doe^Jane||19800517|F\r"
                   f"PV1|1|I|W1^1^1||||||||||||||||V-{i}^^^RSUD^VN" + "|" * 32 + "V\r")
        await send_one(port, message.encode())
    await harness.wait_for(lambda: len(harness.sql("SELECT id FROM deliveries WHERE status='delivered'")) == 2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}", timeout=5) as client:
        found = samples((await client.get("/metrics")).text)
    assert found[("simpul_mapping_events_total", frozenset({("channel", "adt"), ("event", "unmatched_patient")}))] == 2
    assert found[("simpul_mapping_unmapped_fields_total", frozenset({("channel", "adt"), ("field", "PV1-51")}))] == 2
