"""The per-message account of what no map used: segments, fields and (for typed fields) components."""
from __future__ import annotations

from tests.mappings.conftest import make_mapping, msg, seg

MSH = "MSH|^~\\&|SIMRS|RSUD|HUB|HUB|20240115083000+0700||ADT^A04|R-1|P|2.5.1"


def test_unused_segments_fields_and_components_are_counted() -> None:
    pid = seg("PID", f1="1", f3="RM-1^^^RSUD^MR^RSUD-WEST", f5="Santoso^Budi", f38="X")
    _, report = make_mapping().map_with_report(msg(MSH, "EVN|A04", pid, "ROL|1|AD|PP|D1^Pratama", "ZPI|1|x"))
    assert report.not_mapped["PID-3.6"] == 1      # CX-6 assigning facility: the CX map does not read it
    assert report.not_mapped["PID-38"] == 1       # a valued field no map reads
    assert report.not_mapped["ROL"] == 1          # a segment no map reads
    assert report.kept["ZPI"] == 1 and report.lost
    assert report.summary() == ("mapped 3 segments; not mapped: PID-3.6, PID-38, ROL, ZPI (kept as extension)")


def test_a_fully_used_message_reports_nothing_and_drop_segments_is_named() -> None:
    pid = seg("PID", f1="1", f3="RM-1^^^RSUD^MR", f5="Santoso^Budi")
    _, report = make_mapping().map_with_report(msg(MSH, "EVN|A04", pid))
    assert not report.lost and report.summary() == "mapped 3 segments; nothing left unmapped"
    _, report = make_mapping(drop_segments=["NTE"]).map_with_report(msg(MSH, "EVN|A04", pid, "NTE|1||note"))
    assert report.dropped["NTE"] == 1 and report.lost
