"""HL7v2 over HTTP: POST a message, get its ACK; same guarantees as MLLP."""
from __future__ import annotations

import httpx

from tests.helpers import adt, free_port, segment


def http_channel(tmp_path, port: int, name: str = "http-in", path: str = "/hl7/lab", extra: str = "") -> str:
    return f"""\
name: {name}
source:
  http: {{host: 127.0.0.1, port: {port}, path: {path}{extra}}}
destinations:
  - label: out
    file: {{directory: {tmp_path / 'out'}}}
"""


async def post(port: int, body: bytes, path: str = "/hl7/lab") -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"http://127.0.0.1:{port}{path}", content=body,
                                 headers={"Content-Type": "x-application/hl7-v2+er7"})


async def test_post_gets_aa_after_the_commit_and_the_message_is_delivered(harness, tmp_path):
    port = free_port()
    await harness.start({"http.yaml": http_channel(tmp_path, port)})
    raw = adt("HTTP-1", patient="MRHTTP")
    response = await post(port, raw)
    assert response.status_code == 200
    assert response.headers["content-type"] == "x-application/hl7-v2+er7"
    assert segment(response.content, "MSA")[1:3] == ["AA", "HTTP-1"]
    row = harness.sql("SELECT raw, source, patient_id FROM messages")[0]
    assert (bytes(row.raw), row.source, row.patient_id) == (raw, f"http:127.0.0.1:{port}/hl7/lab", "MRHTTP")
    files = await harness.wait_for(lambda: list((tmp_path / "out").glob("*.json")))
    assert "HTTP-1" in files[0].name
    again = await post(port, raw)                        # a resend: the original ACK, stored once
    assert again.content == response.content
    assert harness.sql("SELECT count(*) AS n FROM messages")[0].n == 1


async def test_unreadable_message_is_400_with_an_ar_ack_and_stored_as_rejected(harness, tmp_path):
    port = free_port()
    await harness.start({"http.yaml": http_channel(tmp_path, port)})
    response = await post(port, b"PID|1||MR1\r")
    assert response.status_code == 400 and segment(response.content, "MSA")[1] == "AR"
    assert segment(response.content, "ERR")[2].startswith("MSH")
    assert harness.sql("SELECT status FROM messages")[0].status == "rejected"


async def test_bodies_that_are_no_message_get_problem_documents(harness, tmp_path):
    port = free_port()
    await harness.start({"http.yaml": http_channel(tmp_path, port, extra=", max_bytes: 2048")})
    empty = await post(port, b"   ")
    assert empty.status_code == 400 and empty.headers["content-type"] == "application/problem+json"
    too_big = await post(port, adt("BIG-1") + b"NTE|1||" + b"x" * 4096 + b"\r")
    assert too_big.status_code == 413 and too_big.json()["status"] == 413
    wrong_path = await post(port, adt("P-1"), path="/hl7/other")
    assert wrong_path.status_code == 404
    async with httpx.AsyncClient() as client:
        wrong_method = await client.get(f"http://127.0.0.1:{port}/hl7/lab")
    assert wrong_method.status_code == 405
    assert harness.sql("SELECT count(*) AS n FROM messages")[0].n == 0


async def test_two_paths_share_one_port_and_a_reload_adds_a_path(harness, tmp_path):
    port = free_port()
    await harness.start({"a.yaml": http_channel(tmp_path, port, name="a", path="/hl7/a")}, reload_interval=0.1)
    harness.write_channel("b.yaml", http_channel(tmp_path, port, name="b", path="/hl7/b"))
    await harness.wait_for(lambda: "b" in harness.engine.channels, timeout=10)
    for path, control_id in (("/hl7/a", "A-1"), ("/hl7/b", "B-1")):
        response = await post(port, adt(control_id), path=path)
        assert segment(response.content, "MSA")[1:3] == ["AA", control_id]
    sources = sorted(row.source for row in harness.sql("SELECT source FROM messages"))
    assert sources == [f"http:127.0.0.1:{port}/hl7/a", f"http:127.0.0.1:{port}/hl7/b"]


async def test_http_source_in_the_ingest_process(harness, tmp_path):
    port = free_port()
    await harness.start({"http.yaml": http_channel(tmp_path, port)}, ingest_process=True)
    response = await post(port, adt("PROC-HTTP-1"))
    assert segment(response.content, "MSA")[1] == "AA"
    await harness.wait_for(lambda: list((tmp_path / "out").glob("*.json")), timeout=15)
