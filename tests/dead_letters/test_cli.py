"""The CLI against the store of a running engine: list/show, the replay preview with its cap and
confirmation, pause/resume through the store, and clear refusals instead of tracebacks."""
from __future__ import annotations

import asyncio
import json
import os

from tests.dead_letters.support import fhir_channel
from tests.helpers import SIMPUL_CLI, adt, free_port, send_one, write_settings


async def simpul(settings, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SIMPUL_CLI), *args, "-c", str(settings), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SIMPUL_LOG_LEVEL": "WARNING"})
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def _three_dead_letters(harness, fhir_server, tmp_path):
    port = free_port()
    fhir_server.reject_next(3)
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    for n in range(3):
        await send_one(port, adt(f"CLI-{n}", patient=f"MRC{n}"))
    await harness.wait_for(lambda: harness.sql("SELECT count(*) AS n FROM dead_letters")[0].n == 3)
    return write_settings(tmp_path, harness.database_url, http_port=0, channels_dir=harness.channels_dir)


async def test_batch_replay_shows_preview_and_stops_without_yes_or_above_the_cap(harness, fhir_server, tmp_path):
    settings = await _three_dead_letters(harness, fhir_server, tmp_path)
    code, out, err = await simpul(settings, "dead-letters", "replay", "--channel", "adt", "--reason", "fixed")
    assert code == 1 and "3 dead letter(s)" in err and "MRC0" in err and "--yes" in err
    code, out, err = await simpul(settings, "dead-letters", "replay", "--channel", "adt", "--reason", "fixed",
                                  "--max", "2", "--yes")
    assert code == 1 and "above the cap of 2" in err and "--max 3" in err
    code, out, err = await simpul(settings, "dead-letters", "replay", "--channel", "adt", "--yes")
    assert code == 1 and "reason" in err
    assert harness.sql("SELECT count(*) AS n FROM deliveries")[0].n == 3          # nothing was queued
    code, out, err = await simpul(settings, "dead-letters", "replay", "--channel", "adt", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["deliveries"] == 3
    code, out, err = await simpul(settings, "dead-letters", "replay", "--channel", "adt", "--reason", "fixed",
                                  "--max", "3", "--yes", "--actor", "budi")
    assert code == 0 and "queued 3" in out, err
    # The running engine picks the rows up from the store.
    await harness.wait_for(lambda: harness.sql("SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n
                           == 3)
    assert len(fhir_server.resources("Patient")) == 3
    code, out, _ = await simpul(settings, "dead-letters", "audit", "--json")
    event = json.loads(out)[0]
    assert (event["actor"], event["action"], event["detail"]["count"]) == ("budi", "dead_letter.replay", 3)


async def test_list_show_counts_and_refusals(harness, fhir_server, tmp_path):
    settings = await _three_dead_letters(harness, fhir_server, tmp_path)
    code, out, _ = await simpul(settings, "dead-letters", "list", "--patient-id", "MRC1", "--json")
    page = json.loads(out)
    assert code == 0 and page["total"] == 1 and page["items"][0]["control_id"] == "CLI-1"
    code, out, _ = await simpul(settings, "dead-letters", "list", "--limit", "2", "--offset", "2", "--json")
    assert json.loads(out)["total"] == 3 and len(json.loads(out)["items"]) == 1
    code, out, _ = await simpul(settings, "dead-letters", "counts", "--by", "channel,error_class", "--json")
    assert json.loads(out) == [{"channel": "adt", "error_class": "ConnectorRejected", "count": 3}]
    dead_id = page["items"][0]["id"]
    code, out, _ = await simpul(settings, "dead-letters", "show", str(dead_id))
    assert code == 0 and "ConnectorRejected" in out and "#1" in out and "OperationOutcome" in out
    code, _, err = await simpul(settings, "dead-letters", "show", "99999")
    assert code == 1 and "no dead letter 99999" in err and "Traceback" not in err
    code, _, err = await simpul(settings, "destinations", "pause", "adt/nope", "--reason", "x")
    assert code == 1 and "adt/fhir" in err and "Traceback" not in err


async def test_pause_and_resume_from_the_cli_reach_the_running_engine(harness, fhir_server, tmp_path):
    port = free_port()
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    settings = write_settings(tmp_path, harness.database_url, http_port=0, channels_dir=harness.channels_dir)
    code, out, err = await simpul(settings, "destinations", "pause", "adt/fhir", "--reason", "LIS upgrade")
    assert code == 0, err
    await asyncio.sleep(0.2)
    await send_one(port, adt("CP-1", patient="MRP"))
    await asyncio.sleep(0.5)
    assert harness.sql("SELECT status FROM deliveries")[0].status == "pending"
    code, out, _ = await simpul(settings, "destinations", "status", "--json")
    status = json.loads(out)[0]
    assert status["paused"] is True and status["queued"]["pending"] == 1 and status["paused_by"]
    code, out, _ = await simpul(settings, "destinations", "resume", "adt/fhir", "--reason", "done")
    assert code == 0
    await harness.wait_for(lambda: harness.sql("SELECT status FROM deliveries")[0].status == "delivered")
