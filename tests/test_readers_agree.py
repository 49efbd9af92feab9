"""One ER7 reader: the same bytes are accepted or refused the same way, with the same reason, by
every part of Simpul that reads HL7 v2 (issue 7 deliverable 2, issue 8 finding 9).

One set of odd inputs goes to
- the MLLP listener of a running engine (real socket; ACK code, MSA-2 or ERR-2/ERR-8), and the
  engine's own mapping stage behind it (every accepted message is mapped and delivered),
- the mapping API (`Mapping.map` on the text, decoded as its MSH-18 declares),
- `simpul map FILE` and `simpul conformance FOLDER` (real subprocesses),
- the FHIR->v2 writer: the Bundle of each accepted order is written back as ORM^O01 with the
  original's header, and that message must be accepted by the listener with the same control id.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simpul.errors import MappingError
from simpul.mappings import load_mapping
from simpul.mappings.fhir_to_v2 import build_orm_o01
from simpul.mllp.ack import read_ack
from simpul.v2 import read_header
from tests.helpers import SIMPUL_CLI, EngineHarness, channel_yaml, free_port, segment, send_raw

ORDER = ["PID|1||RM-{n}^^^RS^MR||Santoso^Budi||19800203|M",
         "PV1|1|O|||||||||||||||||V-{n}^^^RSUD^VN",
         "ORC|NW|ORD-{n}^HIS|F-{n}^LAB||||||20240501083000+0700",
         "OBR|1|ORD-{n}^HIS|F-{n}^LAB|2345-7^Glucose^LN"]


def msh(n: int, *, enc: str = "^~\\&", sender: str = "HIS", control_id: str | None = None, charset: str = "",
        version: str = "2.5.1", message_type: str = "ORM^O01^ORM_O01") -> str:
    control = f"C-{n}" if control_id is None else control_id
    fields = ["MSH", enc, sender, "RS", "SIMPUL", "LAB", "20240501100000+0700", "", message_type, control, "P",
              version]
    if charset:
        fields += ["", "", "", "", "", charset]
    return "|".join(fields)


def order(n: int, *, sep: str = "\r", pid_name: str = "Santoso^Budi", **header: Any) -> str:
    lines = [msh(n, **header)] + [line.format(n=n) for line in ORDER]
    lines[1] = lines[1].replace("Santoso^Budi", pid_name)
    return sep.join(lines) + sep


@dataclass(frozen=True)
class Case:
    raw: bytes
    codec: str | None = "utf-8"  # how the mapping API's caller decodes it (None: the bytes are not text)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    detail: str  # accepted: MSH-10 as sent; refused: "MSH-10: reason" (the reader's one line)


BATCH = ("FHS|^~\\&|HIS|RS|||20240501100000+0700\rBHS|^~\\&|HIS|RS|||20240501100000+0700\r"
         + order(9) + "BTS|1\rFTS|1\r")

CASES: dict[str, Case] = {
    "plain": Case(order(1).encode()),
    # v2.7+: MSH-2 has a fifth character, the truncation character; here "#" also appears as data.
    "truncation_char": Case(order(2, enc="^~\\&#", version="2.7", pid_name="Santoso#^Budi").encode()),
    "lone_lf": Case(order(3, sep="\n").encode()),
    "crlf": Case(order(4, sep="\r\n").encode()),
    "trailing_blanks": Case((order(5) + "\r\n   \r\r").encode()),
    "bom_and_leading_blank_line": Case(b"\xef\xbb\xbf\r\n" + order(6).encode()),
    "doubled_escape_in_msh2": Case(order(7, enc="^~\\\\&").encode()),
    "escapes_in_msh_fields": Case(order(8, sender="HIS\\T\\MAIN", control_id="C\\F\\8").encode()),
    "batch_envelope": Case(BATCH.encode()),
    "latin1_declared": Case(order(10, charset="8859/1", pid_name="Sant\u00e9so^Budi").encode("latin-1"),
                            codec="latin-1"),
    "latin1_declared_utf8": Case(order(11, charset="UNICODE UTF-8", pid_name="Sant\u00e9so^Budi").encode("latin-1"),
                                 codec=None),
    "unknown_charset": Case(order(12, charset="KLINGON").encode()),
    "missing_msh10": Case(order(13, control_id="").encode()),
    "missing_msh9": Case(order(14, message_type="").encode()),
    "empty": Case(b""),
    "only_blanks": Case(b" \r\n\r"),
    "no_msh": Case("\r".join(line.format(n=15) for line in ORDER).encode()),
    "three_encoding_chars": Case(order(16, enc="^~\\").encode()),
    "binary_in_body": Case(order(17).replace("Santoso", "San\x00toso").encode()),
}

EXPECTED: dict[str, Verdict] = {
    "plain": Verdict(True, "C-1"),
    "truncation_char": Verdict(True, "C-2"),
    "lone_lf": Verdict(True, "C-3"),
    "crlf": Verdict(True, "C-4"),
    "trailing_blanks": Verdict(True, "C-5"),
    "bom_and_leading_blank_line": Verdict(True, "C-6"),
    "doubled_escape_in_msh2": Verdict(True, "C-7"),
    "escapes_in_msh_fields": Verdict(True, "C\\F\\8"),
    "batch_envelope": Verdict(True, "C-9"),
    "latin1_declared": Verdict(True, "C-10"),
    "latin1_declared_utf8": Verdict(False, "MSH-18: byte 122 does not decode as utf-8 (declared in MSH-18)"),
    "unknown_charset": Verdict(False, "MSH-18: unknown character set in MSH-18"),
    "missing_msh10": Verdict(False, "MSH-10: MSH-10 message control id is empty"),
    "missing_msh9": Verdict(False, "MSH-9: MSH-9 message type is empty"),
    "empty": Verdict(False, "MSH: message does not start with an MSH segment"),
    "only_blanks": Verdict(False, "MSH: message does not start with an MSH segment"),
    "no_msh": Verdict(False, "MSH: message does not start with an MSH segment"),
    "three_encoding_chars": Verdict(False, "MSH-2: MSH-2 encoding characters are not 4 or 5 distinct delimiters"),
    "binary_in_body": Verdict(False, "line 2 contains binary data (a control character)"),
}


def _listener_verdict(ack: bytes) -> Verdict:
    code, acked_control_id, text = read_ack(ack)
    if code == "AA":
        return Verdict(True, acked_control_id)
    location = [part for part in segment(ack, "ERR")[2].split("^")]
    where = f"{location[0]}-{location[2]}" if len(location) > 2 else location[0]
    return Verdict(False, f"{where}: {text}" if where else text)


def _bundle_control_id(bundle: dict[str, Any]) -> str:
    for entry in bundle["entry"]:
        for extension in entry["resource"].get("extension", []):
            for sub in extension.get("extension", []):
                if sub["url"] == "messageControlId":
                    return str(sub["valueString"])
    raise AssertionError("the Bundle holds no v2-msh messageControlId")


def _map_verdict(path: Path) -> tuple[Verdict, dict[str, Any] | None]:
    done = subprocess.run([str(SIMPUL_CLI), "map", str(path)], capture_output=True, text=True, timeout=60,
                          cwd=path.parent)
    if done.returncode == 0:
        bundle = json.loads(done.stdout)
        return Verdict(True, _bundle_control_id(bundle)), bundle
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return Verdict(False, done.stderr.strip().removeprefix(f"simpul map: {path}: ")), None


def _conformance_verdicts(folder: Path) -> dict[str, Verdict | None]:
    """Per file: refused with its reason, or None when the report counts it as mapped."""
    done = subprocess.run([str(SIMPUL_CLI), "conformance", str(folder)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts: dict[str, Verdict | None] = {name: None for name in CASES}
    for line in done.stdout.splitlines():
        name, _, rest = line.strip().partition(".hl7: ")
        if name in CASES:
            assert rest.startswith("refused: "), line  # never a mapping failure for these orders
            verdicts[name] = Verdict(False, rest.removeprefix("refused: "))
    return verdicts


def _mapping_api_verdict(case: Case) -> tuple[Verdict, dict[str, Any] | None] | None:
    if case.codec is None:
        return None  # bytes a caller cannot turn into text: only the byte readers see them
    try:
        bundle = load_mapping("v2_to_fhir", base_dir=Path.cwd()).map(case.raw.decode(case.codec))
    except MappingError as exc:
        return Verdict(False, str(exc)), None
    return Verdict(True, _bundle_control_id(bundle)), bundle


@pytest.mark.timeout(180)
async def test_every_reader_accepts_and_refuses_the_same_odd_inputs(tmp_path: Path, sqlite_url: str) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, case in CASES.items():
        (folder / f"{name}.hl7").write_bytes(case.raw)

    # simpul map and simpul conformance, as an analyst runs them.
    by_map = {name: _map_verdict(folder / f"{name}.hl7") for name in CASES}
    by_conformance = _conformance_verdicts(folder)
    by_api = {name: _mapping_api_verdict(case) for name, case in CASES.items()}

    harness = EngineHarness(tmp_path, sqlite_url)
    port = free_port()
    out = tmp_path / "out"
    await harness.start({"orders.yaml": channel_yaml("orders", port, f"- label: out\n  file: {{directory: {out}}}\n")})
    try:
        by_listener = {name: _listener_verdict(await send_raw(port, case.raw)) for name, case in CASES.items()}
        accepted = [name for name, verdict in EXPECTED.items() if verdict.accepted]
        # The engine's own mapping stage maps every message its listener accepted.
        await harness.wait_for(lambda: len(harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
                               == len(accepted), timeout=30)
        assert harness.sql("SELECT id FROM dead_letters") == []

        # The writer: each accepted order's Bundle, written back with the original header, is a
        # message the listener accepts, with the same control id as sent.
        written = {}
        for name in accepted:
            api = by_api[name]
            assert api is not None and api[1] is not None
            text = build_orm_o01(api[1], read_header(CASES[name].raw))
            written[name] = _listener_verdict(await send_raw(port, text.encode("utf-8")))
    finally:
        await harness.stop()

    assert by_listener == EXPECTED
    assert {name: verdict for name, (verdict, _) in by_map.items()} == EXPECTED
    assert by_conformance == {name: None if v.accepted else v for name, v in EXPECTED.items()}
    assert {name: api[0] for name, api in by_api.items() if api is not None} == {
        name: v for name, v in EXPECTED.items() if CASES[name].codec is not None}
    for name in accepted:  # `simpul map` prints exactly the Bundle the mapping API returns
        assert by_map[name][1] == by_api[name][1], name  # type: ignore[index]
    # The writer's messages: accepted, with the control id of the message they were written from.
    assert written == {name: EXPECTED[name] for name in accepted}
