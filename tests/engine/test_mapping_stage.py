"""The mapping stage behind the ACK: worker processes, failures as dead letters, raw destinations unaffected."""
from __future__ import annotations

import json
import logging
import os

import pytest

from simpul.engine.logs import JsonFormatter

from tests.helpers import adt, channel_yaml, free_port, segment, send_one

UNSUPPORTED = (b"MSH|^~\\&|EHR|RSUD|SIMPUL|RSUD|20261126||QRY^A19^QRY_A19|VX-1|P|2.5.1\r"
               b"PID|1||MR9^^^RSUD^MR||Suharto^Budi\r")


def two_destinations(tmp_path) -> str:
    return f"""\
        - label: fhir-files
          file: {{directory: {tmp_path / 'fhir'}}}
        - label: raw-archive
          payload: raw
          order_by: none
          file: {{directory: {tmp_path / 'raw'}}}
        """


# An analyst module (runs after the built-in map, wherever the mapping runs) that stamps the
# Bundle with the id of the process that mapped it.
PID_STAMP = """\
import os


def transform(message, bundle):
    bundle.setdefault("meta", {})["tag"] = [{"system": "urn:test:mapped-by-pid", "code": str(os.getpid())}]
    return bundle
"""


def _mapped_by(bundle: dict) -> int:
    return int(bundle["meta"]["tag"][0]["code"])


@pytest.mark.parametrize("mapping_workers", [1, 0])
async def test_mapping_runs_in_a_worker_process_and_output_reaches_the_destination(harness, tmp_path,
                                                                                   mapping_workers):
    port = free_port()
    harness.write_channel("pid_stamp.py", PID_STAMP)
    await harness.start({"adt.yaml": channel_yaml("adt", port, two_destinations(tmp_path),
                                                  mapping="{module: pid_stamp.py}")},
                        mapping_workers=mapping_workers)
    for n in range(2):
        assert segment(await send_one(port, adt(f"PROC-{n}", patient=f"MR32{n}")), "MSA")[1] == "AA"
    files = await harness.wait_for(lambda: len(list((tmp_path / "fhir").glob("*.json"))) == 2 and
                                   sorted((tmp_path / "fhir").glob("*.json")), timeout=30)
    bundles = [json.loads(path.read_text()) for path in files]
    for bundle in bundles:
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        assert {"Patient", "Encounter"} <= {entry["resource"]["resourceType"] for entry in bundle["entry"]}
    mapped_by = {_mapped_by(bundle) for bundle in bundles}
    if mapping_workers:
        # Another process than the engine's (this test's) mapped both: the pool's one worker.
        assert len(mapped_by) == 1 and os.getpid() not in mapped_by
    else:
        assert mapped_by == {os.getpid()}      # mapping_workers: 0 maps in a thread of the engine


async def test_unmappable_message_is_acked_dead_lettered_at_the_mapping_stage_and_raw_still_flows(harness, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": channel_yaml("adt", port, two_destinations(tmp_path))})
    ack = await send_one(port, UNSUPPORTED)
    assert segment(ack, "MSA")[1] == "AA"          # stored durably; the mapping problem is ours to fix
    dead = (await harness.wait_for(lambda: harness.sql("SELECT * FROM dead_letters")))[0]
    assert (dead.channel, dead.stage, dead.error_class) == ("adt", "mapping", "UnsupportedMessageType")
    assert bytes(dead.raw) == UNSUPPORTED and dead.control_id == "VX-1"
    raw_files = await harness.wait_for(lambda: list((tmp_path / "raw").glob("*.hl7")))
    assert raw_files[0].read_bytes() == UNSUPPORTED
    assert not (tmp_path / "fhir").exists() or not list((tmp_path / "fhir").glob("*"))


async def test_message_no_channel_takes_is_acked_kept_as_unrouted_logged_once_and_counted(harness, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="simpul.processor")
    port = free_port()
    engine = await harness.start({"adt.yaml": channel_yaml("adt", port, two_destinations(tmp_path),
                                                           message_types="[ORU^R01]")})
    assert segment(await send_one(port, adt("UNR-1", patient="MRUNR9", name="Rahasia^Siti")), "MSA")[1] == "AA"
    rows = await harness.wait_for(lambda: harness.sql("SELECT status FROM messages WHERE status != 'received'"))
    assert [r.status for r in rows] == ["unrouted"]
    assert harness.sql("SELECT count(*) AS n FROM deliveries")[0].n == 0

    source = f"mllp:127.0.0.1:{port}"
    lines = [r for r in caplog.records if r.getMessage() == "message taken by no channel"]
    assert len(lines) == 1
    assert (lines[0].control_id, lines[0].message_type, lines[0].source) == ("UNR-1", "ADT^A01", source)
    rendered = JsonFormatter().format(lines[0])
    assert "MRUNR9" not in rendered and "Rahasia" not in rendered
    metrics = (await engine.metrics_text()).decode()
    assert f'simpul_messages_unrouted_total{{source="{source}"}} 1.0' in metrics
