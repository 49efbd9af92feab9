"""Trigger-specific ADT rules: transfer, discharge, class change, cancels and updates (segments/encounter_events.py)."""
from __future__ import annotations

from typing import Any

from tests.mappings.conftest import MSH, check_bundle, make_mapping, msg, resources, seg

PID = seg("PID", f1="1", f3="RM-7^^^RSUD^MR", f5="Santoso^Budi", f7="19800212", f8="M")
EVN = "EVN|{event}|20240115083000+0700||||20240115081500+0700"
WARD_A = "W3^301^A^RSUD"
WARD_B = "ICU^2^1^RSUD"
VISIT = "V-9^^^RSUD^VN"


def pv1(**fields: str) -> str:
    base = {"f1": "1", "f2": "I", "f19": VISIT, "f44": "20240110080000+0700"}
    return seg("PV1", **{**base, **fields})


def adt(event: str, *segs: str, evn: str | None = None) -> dict[str, Any]:
    b = make_mapping().map(msg(MSH.format(type=f"ADT^{event}"), evn if evn is not None else EVN.format(event=event),
                               PID, *segs))
    check_bundle(b)
    return b


def encounter(b: dict[str, Any]) -> dict[str, Any]:
    (enc,) = resources(b, "Encounter")
    return enc


def locations(b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Encounter.location entries by the Location's name."""
    names = {e["fullUrl"]: e["resource"]["name"] for e in b["entry"] if e["resource"]["resourceType"] == "Location"}
    return {names[loc["location"]["reference"]]: loc for loc in encounter(b).get("location", [])}


def test_a02_transfer_makes_the_new_location_active_and_the_prior_one_history() -> None:
    b = adt("A02", pv1(f3=WARD_B, f6=WARD_A))
    locs = locations(b)
    assert locs["ICU 2 1"] == {"location": locs["ICU 2 1"]["location"], "status": "active",
                               "period": {"start": "2024-01-15T08:15:00+07:00"}}
    assert locs["W3 301 A"]["status"] == "completed"
    assert locs["W3 301 A"]["period"] == {"end": "2024-01-15T08:15:00+07:00"}  # EVN-6, the transfer time
    assert encounter(b)["status"] == "in-progress"


def test_a02_without_evn_6_uses_evn_2_as_transfer_time() -> None:
    b = adt("A02", pv1(f3=WARD_B, f6=WARD_A), evn="EVN|A02|20240115090000+0700")
    assert locations(b)["W3 301 A"]["period"] == {"end": "2024-01-15T09:00:00+07:00"}


def test_a03_discharge_ends_the_encounter_at_pv1_45() -> None:
    b = adt("A03", pv1(f3=WARD_A, f36="01", f45="20240115093000+0700"))
    enc = encounter(b)
    assert enc["status"] == "finished"
    assert enc["period"] == {"start": "2024-01-10T08:00:00+07:00", "end": "2024-01-15T09:30:00+07:00"}
    assert locations(b)["W3 301 A"]["status"] == "completed"
    assert locations(b)["W3 301 A"]["period"] == {"end": "2024-01-15T09:30:00+07:00"}
    assert enc["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "01"


def test_a03_without_pv1_45_ends_at_the_event_time() -> None:
    enc = encounter(adt("A03", pv1(f3=WARD_A)))
    assert enc["status"] == "finished" and enc["period"]["end"] == "2024-01-15T08:15:00+07:00"


def test_a06_outpatient_to_inpatient_keeps_the_prior_class_and_visit_number() -> None:
    b = adt("A06", pv1(f3=WARD_A, f2="I"), "MRG|RM-7^^^RSUD^MR||||V-OUT-1^^^RSUD^VN")
    enc = encounter(b)
    assert enc["class"]["code"] == "IMP" and enc["status"] == "in-progress"
    assert enc["classHistory"] == [{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                              "code": "AMB"}, "period": {"end": "2024-01-15T08:15:00+07:00"}}]
    old = [i for i in enc["identifier"] if i.get("use") == "old"]
    assert [i["value"] for i in old] == ["V-OUT-1"]


def test_a07_inpatient_to_outpatient() -> None:
    enc = encounter(adt("A07", pv1(f3=WARD_A, f2="O")))
    assert enc["class"]["code"] == "AMB"
    assert enc["classHistory"][0]["class"]["code"] == "IMP"


def test_a11_cancel_admit_cancels_the_encounter() -> None:
    assert encounter(adt("A11", pv1(f3=WARD_A)))["status"] == "cancelled"


def test_a12_cancel_transfer_restores_the_prior_location_only() -> None:
    # PV1-3: the location the patient returns to; PV1-6: the transfer destination being cancelled
    b = adt("A12", pv1(f3=WARD_A, f6=WARD_B))
    locs = locations(b)
    assert set(locs) == {"W3 301 A"} and locs["W3 301 A"]["status"] == "active"
    assert encounter(b)["status"] == "in-progress"


def test_a13_cancel_discharge_reopens_even_when_pv1_45_is_repeated() -> None:
    b = adt("A13", pv1(f3=WARD_A, f36="01", f45="20240115093000+0700"))
    enc = encounter(b)
    assert enc["status"] == "in-progress"
    assert enc["period"] == {"start": "2024-01-10T08:00:00+07:00"}
    assert "hospitalization" not in enc
    assert locations(b)["W3 301 A"]["status"] == "active"


def test_a08_update_takes_the_status_pv1_implies() -> None:
    assert encounter(adt("A08", pv1(f3=WARD_A)))["status"] == "in-progress"
    assert encounter(adt("A08", pv1(f3=WARD_A, f45="20240115093000+0700")))["status"] == "finished"
    # no patient class: nothing better than the IG's A08 -> unknown
    assert encounter(adt("A08", seg("PV1", f1="1", f3=WARD_A, f19=VISIT)))["status"] == "unknown"


def test_same_visit_through_admit_transfer_discharge_is_one_encounter() -> None:
    urls = set()
    for event, fields in (("A01", {"f3": WARD_A}), ("A02", {"f3": WARD_B, "f6": WARD_A}),
                          ("A03", {"f3": WARD_B, "f45": "20240116100000+0700"})):
        b = adt(event, pv1(**fields))
        urls.add(next(e["request"]["url"] for e in b["entry"] if e["resource"]["resourceType"] == "Encounter"))
    assert urls == {"Encounter?identifier=urn:id:RSUD|V-9"}
