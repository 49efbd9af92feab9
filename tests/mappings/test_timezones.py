"""Time zones (finding 2): channel default_timezone, else the engine's, else MSH-7's offset; only when
none is known is a time cut to its date, and then it is counted."""
from __future__ import annotations

from tests.mappings.conftest import check_bundle, make_mapping, msg, resources, seg

PID = seg("PID", f1="1", f3="RM-1^^^RSUD^MR", f5="Santoso^Budi", f29="20240116031500")
PV1 = seg("PV1", f1="1", f2="I", f19="V-1^^^RSUD^VN", f44="20240115080000", f45="20240116090000")
OBR = seg("OBR", f1="1", f2="P-1", f3="F-1", f4="24331-1^Lipid panel^LN", f7="20240115073000")
OBX = seg("OBX", f1="1", f2="NM", f3="2093-3^Cholesterol^LN", f5="180", f6="mg/dL", f11="F")


def head(msh_7: str, kind: str = "ORU^R01^ORU_R01") -> str:
    return f"MSH|^~\\&|LIS|LAB|HUB|RSUD|{msh_7}||{kind}|TZ-1|P|2.5.1"


def test_msh_7_offset_is_the_fallback_for_times_without_one() -> None:
    bundle = make_mapping().map(msg(head("20240115090000+0700"), PID, PV1, OBR, OBX))
    check_bundle(bundle)
    assert resources(bundle, "Encounter")[0]["period"] == {"start": "2024-01-15T08:00:00+07:00",
                                                           "end": "2024-01-16T09:00:00+07:00"}
    assert resources(bundle, "DiagnosticReport")[0]["effectiveDateTime"] == "2024-01-15T07:30:00+07:00"
    assert resources(bundle, "Patient")[0]["deceasedDateTime"] == "2024-01-16T03:15:00+07:00"


def test_channel_default_wins_over_msh_7() -> None:
    bundle = make_mapping(default_timezone="+08:00").map(msg(head("20240115090000+0700"), PID, OBR, OBX))
    assert resources(bundle, "DiagnosticReport")[0]["effectiveDateTime"] == "2024-01-15T07:30:00+08:00"


def test_without_any_zone_the_date_is_kept_and_counted() -> None:
    mapping = make_mapping()
    bundle, report = mapping.map_with_report(msg(head("20240115090000"), PID, PV1, OBR, OBX))
    check_bundle(bundle)
    assert resources(bundle, "DiagnosticReport")[0]["effectiveDateTime"] == "2024-01-15"
    assert report.counts["time_without_zone"] >= 4  # PV1-44, PV1-45, OBR-7, PID-29 (and MSH-7)
    assert "time_without_zone" in report.summary()


def test_provenance_kept_when_evn_2_has_no_offset_but_msh_7_has_one() -> None:
    adt = msg(head("20240115090000+0700", "ADT^A01^ADT_A01"), "EVN|A01|20240115085900", PID, PV1)
    bundle = make_mapping().map(adt)
    check_bundle(bundle)
    assert resources(bundle, "Provenance")[0]["recorded"] == "2024-01-15T08:59:00+07:00"

