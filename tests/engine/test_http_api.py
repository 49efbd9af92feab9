"""The engine's HTTP side as monitoring and on-call staff use it: /healthz, /metrics, /api/messages."""
from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import EngineHarness, bearer, adt, file_destination_channel, free_port, send_one, send_raw

N = 5


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, keyed by name and label set."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_healthz_metrics_and_message_api_after_traffic(harness: EngineHarness, tmp_path: Path) -> None:
    port = free_port()
    engine = await harness.start({"adt.yaml": file_destination_channel("adt", port, tmp_path / "out")}, http=True)
    assert engine.http_port
    base = f"http://127.0.0.1:{engine.http_port}"
    for i in range(N):
        await send_one(port, adt(f"HTTP-{i}", patient="MR-HTTP" if i == 0 else f"MR-{i}"))
    await send_raw(port, b"PID|1||MR1\r")                         # no MSH: answered AR
    await harness.wait_for(lambda: len(harness.sql("SELECT id FROM deliveries WHERE status='delivered'")) == N)

    assert harness.admin_token
    async with httpx.AsyncClient(base_url=base, timeout=5, headers=bearer(harness.admin_token)) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["channels"] == ["adt"]

        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        found = samples(metrics.text)
        source = frozenset({("source", f"mllp:127.0.0.1:{port}")})
        assert found[("simpul_messages_received_total", source)] == N + 1
        assert found[("simpul_messages_acked_total", source)] == N
        assert found[("simpul_messages_rejected_total", source | {("reason", "header")})] == 1
        delivered = frozenset({("channel", "adt"), ("destination", "out")})
        assert found[("simpul_deliveries_delivered_total", delivered)] == N
        # Every answered frame (AA or AR) is one latency observation; all of them under 5 s.
        assert found[("simpul_ack_latency_seconds_count", source)] == N + 1
        assert found[("simpul_ack_latency_seconds_bucket", source | {("le", "+Inf")})] == N + 1
        assert found[("simpul_ack_latency_seconds_bucket", source | {("le", "5.0")})] == N + 1

        listing = await client.get("/api/messages", params={"patient_id": "MR-HTTP"})
        assert listing.status_code == 200
        body = listing.json()
        assert body["count"] == 1
        message = body["messages"][0]
        assert (message["control_id"], message["message_type"], message["status"], message["ack_code"]) == (
            "HTTP-0", "ADT^A01", "routed", "AA")
        assert message["deliveries"] == [{"channel": "adt", "destination": "out", "status": "delivered",
                                          "attempts": 1}]
        assert "raw" not in message                  # the listing never ships message bodies

        for bad in ({"limit": "0"}, {"since": "yesterday"}):
            invalid = await client.get("/api/messages", params=bad)
            assert invalid.status_code == 400
            assert invalid.headers["content-type"] == "application/problem+json"
            problem = invalid.json()
            assert problem["status"] == 400 and problem["title"] == "Invalid request"
            assert next(iter(bad)) in problem["detail"]

