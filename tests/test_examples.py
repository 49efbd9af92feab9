"""The shipped example channels and messages work as Get started (docs/get-started.md) says."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
SIMPUL = str(Path(sys.executable).parent / "simpul")


def test_shipped_channels_validate():
    result = subprocess.run([SIMPUL, "validate", str(ROOT / "channels")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_example_messages_get_aa_and_reach_the_example_destinations(harness, tmp_path):
    port = free_port()
    for source in (ROOT / "channels").glob("*.yaml"):
        text = source.read_text().replace("port: 2575", f"port: {port}").replace("var/out", str(tmp_path / "out"))
        harness.write_channel(source.name, text)
    await harness.start(mapping_workers=1, ingest_process=True)   # the production layout
    messages = sorted(str(p) for p in (ROOT / "examples" / "messages").glob("*.hl7"))
    process = await asyncio.create_subprocess_exec(SIMPUL, "send", f"127.0.0.1:{port}", *messages, "--quiet",
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == f"sent {len(messages)} message(s): AA {len(messages)}"
    bundles = await harness.wait_for(lambda: len(list((tmp_path / "out" / "fhir").glob("*.json"))) == 3
                                     and list((tmp_path / "out" / "fhir").glob("*.json")), timeout=30)
    kinds = set()
    for path in bundles:
        bundle = json.loads(path.read_text())
        kinds |= {entry["resource"]["resourceType"] for entry in bundle["entry"]}
    assert {"Patient", "Encounter", "Observation", "DiagnosticReport"} <= kinds
    raw = await harness.wait_for(lambda: list((tmp_path / "out" / "raw").glob("*.hl7")))
    assert raw[0].read_bytes() == (ROOT / "examples" / "messages" / "oru_r01_lipids.hl7").read_bytes()
