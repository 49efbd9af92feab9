"""The conformance report over tests/corpus: every in-scope message maps and validates."""
from __future__ import annotations

from simpul.mappings import conformance
from tests.mappings.conftest import CORPUS


def test_every_in_scope_corpus_message_maps_and_validates() -> None:
    report = conformance.run(CORPUS)
    assert report.in_scope_failures == 0, report.failures
    assert sum(report.mapped.values()) == 115
    # Two IG samples declare MSH-18 ASCII but hold UTF-8 bytes: refused with the reason the listener's
    # AE gives and `simpul map` prints (they map once the sender's charset is configured as fallback).
    assert report.refused == {"ORM^O01": 1, "OML^O21": 1}
    assert "hl7-v2-to-fhir__test_conversions-ORM_O01.hl7: refused: MSH-18: byte 1474 does not decode as ascii" in (
        str(report))
    # out-of-scope types are reported, not crashed on: ACK has no map, and one ORU^R01 sample is
    # an MSH alone (nothing to map: no empty Bundle is sent for it)
    assert report.unsupported == {"ACK": 1, "ORU^R01": 1}
    assert report.compared_files >= 60
    assert report.fields["Patient"].matching > 0 and report.fields["Observation"].matching > 0
    text = str(report)
    assert "ORU^R01" in text and "unsupported message type ACK" in text
    assert "holds no segment the map reads" in text


def test_main_prints_the_report(capsys) -> None:  # type: ignore[no-untyped-def]
    assert conformance.main([str(CORPUS)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Conformance report") and "matching" in out


def test_bench_reports_all_four_rates(capsys) -> None:  # type: ignore[no-untyped-def]
    from simpul.mappings import bench

    rates = bench.main(seconds=0.05)
    assert set(rates) == {"ADT^A01", "ADT^A01 + validation", "ORU^R01 (20 OBX)", "ORU^R01 (20 OBX) + validation"}
    assert all(r > 0 for r in rates.values())
    out = capsys.readouterr().out
    assert "msg/s" in out and "x hl7.parse alone" in out  # the same-run baseline ratio
