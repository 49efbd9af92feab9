"""A business event that failed its mapping is replayed with the fixed channel, as HL7v2 would be."""
from __future__ import annotations

from pathlib import Path

from simpul.engine.events import emit_event

from tests.helpers import EngineHarness
from tests.mappings.test_fhir_to_v2 import order_bundle


def orders_channel(out: Path, mapping: str) -> str:
    return (f"name: orders\nsource:\n  events: {{types: [lab_order_created]}}\nmapping: {mapping}\n"
            f"destinations:\n  - label: lis\n    order_by: placer\n    file: {{directory: {out}}}\n")


async def test_an_event_dead_lettered_at_mapping_is_replayed_with_the_corrected_mapping(
        harness: EngineHarness, api_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    # The analyst's mistake: the HL7v2 map on a channel of FHIR events.
    engine = await harness.start({"orders.yaml": orders_channel(out, "v2_to_fhir")}, http=True)
    assert engine.writer is not None
    await engine.writer.run(lambda connection: emit_event(
        connection, "lab_order_created", subject="ServiceRequest/sr", data=order_bundle(), source="emr"))
    dead = await harness.wait_for(lambda: harness.sql("SELECT id, stage, error FROM dead_letters"))
    assert dead[0].stage == "mapping" and "reads HL7v2" in dead[0].error

    harness.write_channel("orders.yaml", orders_channel(out, "fhir_to_oml_o21"))
    assert await engine.reload()
    api = api_factory(engine)
    done = await api.post("/api/dead-letters/replay", {"ids": [dead[0].id], "confirm": True,
                                                       "reason": "channel maps FHIR orders now"})
    assert done["executed"] is True
    files = await harness.wait_for(lambda: list(out.glob("*.hl7")))
    assert "OML^O21^OML_O21" in files[0].read_text()
    (replayed,) = harness.sql("SELECT content_type, status FROM deliveries")
    assert tuple(replayed) == ("x-application/hl7-v2+er7", "delivered")
