"""The conformance report over tests/corpus: every in-scope message maps and validates."""
from __future__ import annotations

from simpul.mappings import conformance
from tests.mappings.conftest import CORPUS


def test_every_in_scope_corpus_message_maps_and_validates() -> None:
    report = conformance.run(CORPUS)
    assert report.in_scope_failures == 0, report.failures
    assert sum(report.mapped.values()) == 178
    assert report.messages == 186  # batch files are split: each message is counted and mapped
    # out-of-scope types are reported, not crashed on: ACK and PPR^PC1 have no map, and six ORU^R01
    # samples are an MSH alone (nothing to map: no empty Bundle is sent for them)
    assert report.unsupported == {"ACK": 1, "ORU^R01": 6, "PPR^PC1": 1}
    assert report.compared_files >= 60
    assert report.fields["Patient"].matching > 0 and report.fields["Observation"].matching > 0
    text = str(report)
    assert "ORU^R01" in text and "unsupported message type ACK" in text
    assert "holds no segment the map reads" in text
    assert report.invariant_failures == [] and "FHIR invariant failures: 0" in text
    # what the maps leave unused is listed, most frequent first
    assert report.unmapped_fields and "Fields and segments the maps did not use" in text


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
