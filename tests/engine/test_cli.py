"""The `simpul` command as an analyst runs it: validate, run, map, send, messages search.

Every call is a real subprocess of the installed console script, so exit codes, stdout/stderr
separation and "no traceback" are checked the way a shell sees them.
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.fake_lis import FakeLis
from tests.helpers import (
    REPO_ROOT, SIMPUL_CLI, EngineHarness, adt, file_destination_channel, free_port, oru, send_one, send_raw,
    store_execute, write_settings,
)

ADT_A01 = REPO_ROOT / "examples" / "messages" / "adt_a01.hl7"
FINDING = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+) (?P<key>\S+): (?P<reason>.+)$")


@dataclass
class Run:
    code: int
    out: str
    err: str


def simpul(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30) -> Run:
    done = subprocess.run([str(SIMPUL_CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    return Run(done.returncode, done.stdout, done.stderr)


async def simpul_async(*args: str, cwd: Path, timeout: float = 30) -> Run:
    """For calls that talk to an engine running in this test's event loop."""
    process = await asyncio.create_subprocess_exec(str(SIMPUL_CLI), *args, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


# ---- simpul validate / simpul run ------------------------------------------------------------

BROKEN = {
    "adt.yaml": """\
        name: adt
        source:
          mllp:
            host: 127.0.0.1
            port: 0
            dedup_windw: 1h
        filter:
          expression: "message_type == 'ADT^A01' and and"
        destinations:
          - label: out
            max_in_flight: many
            file: {directory: out}
        """,
    "dup.yaml": """\
        name: lab
        source:
          mllp: {port: 0}
        name: lab2
        """,
    "secret.yaml": """\
        name: fhir
        source:
          mllp: {port: 0}
        destinations:
          - label: satusehat
            fhir_server:
              base_url: ${SIMPUL_TEST_NEVER_SET_URL}
        """,
    "nodest.yaml": """\
        name: nodest
        source:
          mllp: {port: 0}
        """,
}


def write_channels(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_validate_reports_every_problem_as_file_line_col_key_reason_and_exits_1(tmp_path: Path) -> None:
    write_channels(tmp_path / "channels", BROKEN)
    result = simpul("validate", "channels", cwd=tmp_path)
    assert result.code == 1
    assert result.out == ""                    # findings are problems: stderr
    lines = result.err.splitlines()
    assert lines and all(FINDING.match(line) for line in lines), result.err
    by_key = {(m["file"], m["key"]): m for m in map(FINDING.match, lines) if m}
    unknown = by_key[("channels/adt.yaml", "source.mllp.dedup_windw")]
    assert (unknown["line"], unknown["col"]) == ("6", "5")
    assert "unknown key" in unknown["reason"] and "did you mean 'dedup_window'" in unknown["reason"]
    wrong_type = by_key[("channels/adt.yaml", "destinations[0].max_in_flight")]
    assert wrong_type["line"] == "11" and "integer" in wrong_type["reason"]
    expression = by_key[("channels/adt.yaml", "filter.expression")]
    assert expression["line"] == "8" and "syntax" in expression["reason"]
    duplicate = by_key[("channels/dup.yaml", "name")]
    assert duplicate["line"] == "4" and duplicate["reason"] == "duplicate key"
    variable = by_key[("channels/secret.yaml", "destinations[0].fhir_server.base_url")]
    assert variable["line"] == "7" and "SIMPUL_TEST_NEVER_SET_URL" in variable["reason"]
    assert "not set" in variable["reason"]
    missing = by_key[("channels/nodest.yaml", "destinations")]
    assert missing["reason"] == "required key is missing"
    assert "Traceback" not in result.err


def test_validate_passes_a_valid_folder_with_exit_0(tmp_path: Path) -> None:
    write_channels(tmp_path / "channels", {"adt.yaml": file_destination_channel("adt", 0, tmp_path / "out")})
    result = simpul("validate", "channels", cwd=tmp_path)
    assert (result.code, result.err) == (0, "")
    assert result.out == "ok: 1 channel(s) valid\n"   # the result: stdout


def test_run_refuses_to_start_with_an_invalid_channel_and_names_file_and_line(tmp_path: Path) -> None:
    write_channels(tmp_path / "channels", {"adt.yaml": BROKEN["adt.yaml"]})
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=0)
    result = simpul("run", "-c", str(settings), cwd=tmp_path, timeout=20)
    assert result.code == 2
    assert "refusing to start" in result.err
    assert "channels/adt.yaml:6:5 source.mllp.dedup_windw" in result.err
    assert "Traceback" not in result.err



def test_run_with_its_http_port_taken_exits_2_at_once_and_leaves_no_process(tmp_path: Path) -> None:
    """The listeners' child process is already up when HTTP binds: a refused start must stop it
    too, or `simpul run` would print the refusal and then hang on the orphaned child."""
    mllp_port = free_port()
    write_channels(tmp_path / "channels", {"adt.yaml": file_destination_channel("adt", mllp_port, tmp_path / "out")})
    with socket.create_server(("127.0.0.1", 0)) as taken:
        http_port = taken.getsockname()[1]
        settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=http_port)
        result = simpul("run", "-c", str(settings), cwd=tmp_path, timeout=60)
    assert result.code == 2
    assert f"http: cannot listen on 127.0.0.1:{http_port} (address already in use)" in result.err
    assert "Traceback" not in result.err
    with pytest.raises(OSError):        # the ingest child that held the MLLP port is gone
        socket.create_connection(("127.0.0.1", mllp_port), timeout=1).close()

# ---- simpul map ------------------------------------------------------------------------------

def test_map_prints_a_fhir_bundle_with_patient_and_encounter(tmp_path: Path) -> None:
    result = simpul("map", str(ADT_A01), cwd=tmp_path)
    assert result.code == 0, result.err
    bundle = json.loads(result.out)
    assert bundle["resourceType"] == "Bundle"
    resources = [entry["resource"] for entry in bundle["entry"]]
    kinds = {resource["resourceType"] for resource in resources}
    assert {"Patient", "Encounter"} <= kinds
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert "MR000123" in {identifier.get("value") for identifier in patient["identifier"]}


@pytest.mark.parametrize("content", [b"PID|1||MR1\rPV1|1|I\r", b"MSH|^~\\&|A\r", b"no hl7 here\n"])
def test_map_of_a_malformed_file_exits_2_with_one_line_and_no_traceback(tmp_path: Path, content: bytes) -> None:
    broken = tmp_path / "broken.hl7"
    broken.write_bytes(content)
    result = simpul("map", str(broken), cwd=tmp_path)
    assert result.code == 2
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "broken.hl7" in result.err and "Traceback" not in result.err


def test_map_gives_the_same_bundle_for_lf_crlf_and_bom_files(tmp_path: Path) -> None:
    segments = [line for line in re.split(rb"\r\n|\r|\n", ADT_A01.read_bytes()) if line]
    variants = {"cr": b"\r".join(segments) + b"\r", "lf": b"\n".join(segments) + b"\n",
                "crlf": b"\r\n".join(segments) + b"\r\n", "bom": b"\xef\xbb\xbf" + b"\r\n".join(segments)}
    outputs = {}
    for name, content in variants.items():
        path = tmp_path / f"{name}.hl7"
        path.write_bytes(content)
        result = simpul("map", str(path), cwd=tmp_path)
        assert result.code == 0, f"{name}: {result.err}"
        outputs[name] = json.loads(result.out)
    assert outputs["lf"] == outputs["cr"] == outputs["crlf"] == outputs["bom"]


# ---- simpul send -----------------------------------------------------------------------------

async def test_send_prints_the_ack_summary_and_exits_0(tmp_path: Path, sqlite_url: str) -> None:
    harness = EngineHarness(tmp_path, sqlite_url)
    port = free_port()
    await harness.start({"adt.yaml": file_destination_channel("adt", port, tmp_path / "out")})
    try:
        two = tmp_path / "two.hl7"
        two.write_bytes(adt("SEND-1").replace(b"\r", b"\n") + adt("SEND-2").replace(b"\r", b"\n"))
        one = tmp_path / "one.hl7"
        one.write_bytes(adt("SEND-3"))
        result = await simpul_async("send", f"127.0.0.1:{port}", str(two), str(one), "--quiet", cwd=tmp_path)
        assert result.code == 0, result.err
        assert "AA 3" in result.out
        stored = [row.control_id for row in harness.sql("SELECT control_id FROM messages ORDER BY id")]
        assert stored == ["SEND-1", "SEND-2", "SEND-3"]
    finally:
        await harness.stop()


async def test_send_exits_1_when_a_message_gets_ar(tmp_path: Path) -> None:
    batch = tmp_path / "batch.hl7"
    batch.write_bytes(adt("AR-1") + adt("AR-2") + adt("AR-3"))
    async with FakeLis(ack_codes=["AA", "AR", "AA"]) as lis:
        result = await simpul_async("send", f"127.0.0.1:{lis.port}", str(batch), "-q", cwd=tmp_path)
    assert result.code == 1
    assert "AA 2" in result.out and "AR 1" in result.out
    assert "AR-2" in result.err               # the problem line names the control id
    assert "Traceback" not in result.err
    assert len(lis.received) == 3             # an AR does not stop the rest of the batch


async def test_send_reports_a_message_without_msh_and_sends_the_rest(tmp_path: Path) -> None:
    batch = tmp_path / "batch.hl7"
    batch.write_bytes(b"PID|1||MR1\r" + adt("OK-1"))
    async with FakeLis() as lis:
        result = await simpul_async("send", f"127.0.0.1:{lis.port}", str(batch), "-q", cwd=tmp_path)
    assert result.code == 1
    assert result.out == "sent 1 message(s): AA 1; not sent 1\n"
    assert "not sent" in result.err and "Traceback" not in result.err
    assert len(lis.received) == 1


# ---- simpul messages search ------------------------------------------------------------------

async def test_messages_search_by_patient_control_id_type_status_and_time(tmp_path: Path, sqlite_url: str) -> None:
    harness = EngineHarness(tmp_path, sqlite_url)
    port = free_port()
    await harness.start({"all.yaml": file_destination_channel("all", port, tmp_path / "out")})
    try:
        await send_one(port, adt("Q-ADT-1", patient="MR-FIND"))
        await send_one(port, adt("Q-ADT-2", patient="MR-OTHER"))
        await send_one(port, oru("Q-ORU-3", patient="MR-FIND"))
        await send_raw(port, b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|\rPID|1\r")     # AR: no MSH-10
        await harness.wait_for(lambda: len(harness.sql("SELECT id FROM deliveries WHERE status='delivered'")) == 3)
    finally:
        await harness.stop()
    # One message arrived long ago: a time window must leave it out.
    store_execute(sqlite_url, "UPDATE messages SET received_at = :t WHERE control_id = 'Q-ADT-2'",
                  t=time.time() - 3 * 3600)
    settings = write_settings(tmp_path, sqlite_url, http_port=0)

    queries = [("--patient-id", "MR-FIND"), ("--control-id", "Q-ADT-2"), ("--type", "ADT^*"),
               ("--status", "rejected"), ("--since", "1h"), ("--until", "1h")]
    runs = await asyncio.gather(*(simpul_async("messages", "search", "-c", str(settings), "--json", *query,
                                               cwd=tmp_path) for query in queries))
    for query, result in zip(queries, runs):
        assert result.code == 0, f"{query}: {result.err}"
    by_patient, by_control_id, adts, rejected, recent, older = (
        [json.loads(line) for line in result.out.splitlines()] for result in runs)
    assert [m["control_id"] for m in by_patient] == ["Q-ORU-3", "Q-ADT-1"]            # newest first
    found = by_patient[1]
    assert (found["message_type"], found["status"], found["ack_code"]) == ("ADT^A01", "routed", "AA")
    assert [(d["destination"], d["status"]) for d in found["deliveries"]] == [("out", "delivered")]
    assert [m["patient_id"] for m in by_control_id] == ["MR-OTHER"]
    assert sorted(m["control_id"] for m in adts) == ["Q-ADT-1", "Q-ADT-2"]         # not the ORU
    assert [(m["status"], m["ack_code"]) for m in rejected] == [("rejected", "AR")]
    assert "Q-ADT-2" not in {m["control_id"] for m in recent} and len(recent) == 3
    assert [m["control_id"] for m in older] == ["Q-ADT-2"]


def test_messages_search_with_a_bad_time_exits_2_with_one_line(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=0)
    result = simpul("messages", "search", "-c", str(settings), "--since", "yesterday-ish", cwd=tmp_path)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "yesterday-ish" in result.err
