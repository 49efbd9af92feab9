"""`simpul map` on real-world files: batches and several messages (NDJSON, never one silently
ignored), the stderr summary of what was not mapped, and --strict."""
from __future__ import annotations

import json
from pathlib import Path

from tests.engine.test_cli import simpul


def oru(control_id: str, extra: str = "") -> str:
    return "\r".join([
        f"MSH|^~\\&|LIS|LAB|HUB|RSUD|20240115090000+0700||ORU^R01^ORU_R01|{control_id}|P|2.5.1",
        "PID|1||RM-1^^^RSUD^MR||Santoso^Budi",
        "OBR|1|P-1|F-1|2345-7^Glucose^LN|||20240115073000",
        "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-110||||F" + extra,
    ]) + "\r"


def test_a_batch_file_prints_one_bundle_per_message(tmp_path: Path) -> None:
    batch = tmp_path / "batch.hl7"
    batch.write_text("FHS|^~\\&|LIS|LAB\nBHS|^~\\&|LIS|LAB\n" + oru("B1").replace("\r", "\n")
                     + oru("B2").replace("\r", "\n") + "BTS|2\nFTS|1\n")
    result = simpul("map", str(batch), cwd=tmp_path)
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert len(lines) == 2
    assert all(json.loads(line)["resourceType"] == "Bundle" for line in lines)
    assert result.err.startswith("2 messages; mapped")


def test_two_messages_without_envelope_are_both_mapped(tmp_path: Path) -> None:
    path = tmp_path / "two.hl7"
    path.write_text(oru("M1") + oru("M2"))
    result = simpul("map", str(path), cwd=tmp_path)
    assert result.code == 0, result.err
    assert len(result.out.strip().splitlines()) == 2


def test_a_batch_whose_count_does_not_match_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.hl7"
    path.write_text("BHS|^~\\&|LIS|LAB\r" + oru("S1") + "BTS|3\r")
    result = simpul("map", str(path), cwd=tmp_path)
    assert result.code == 2 and result.out == ""
    assert "BTS-1 says 3" in result.err and len(result.err.strip().splitlines()) == 1


def test_one_bad_message_refuses_the_whole_file_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "mixed.hl7"
    path.write_text(oru("G1") + "MSH|^~\\&|LIS|LAB|HUB|RSUD|20240115||ZZZ^Z99|G2|P|2.5.1\r")
    result = simpul("map", str(path), cwd=tmp_path)
    assert result.code == 2 and result.out == ""
    assert "message 2 of 2" in result.err


def test_summary_names_unmapped_fields_and_strict_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "extra.hl7"
    path.write_text(oru("X1", "|||||||||||||||||||||||||XYZ") + "ZPI|1|local\r")
    result = simpul("map", str(path), cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.err.strip() == "mapped 4 segments; not mapped: OBX-36, ZPI (kept as extension)"
    strict = simpul("map", "--strict", str(path), cwd=tmp_path)
    assert strict.code == 3 and json.loads(strict.out)["resourceType"] == "Bundle"
    clean = tmp_path / "clean.hl7"
    clean.write_text(oru("X2"))
    assert simpul("map", "--strict", str(clean), cwd=tmp_path).code == 0
