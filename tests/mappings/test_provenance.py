"""MSH facts live in Provenance (transaction Bundles carry no MessageHeader)."""
from __future__ import annotations

from tests.mappings.conftest import check_bundle, make_mapping, msg, resources


def test_msh_facts_are_in_provenance_and_there_is_no_message_header() -> None:
    text = msg("MSH|^~\\&|SIMRS|RSUD^2.16.1^ISO|HUB|KEMKES|20240115083000+0700||ADT^A04^ADT_A01|CTRL-9|P|2.5.1||||||UNICODE UTF-8",
               "EVN|A04|20240115082500+0700", "PID|1||RM-7^^^RSUD^MR||Santoso^Budi")
    b = make_mapping().map(text)
    check_bundle(b)
    assert resources(b, "MessageHeader") == []
    (prov,) = resources(b, "Provenance")
    assert prov["recorded"] == "2024-01-15T08:25:00+07:00"  # EVN-2 wins over MSH-7
    assert prov["entity"][0]["what"]["identifier"]["value"] == "CTRL-9"
    msh = next(e for e in prov["extension"] if e["url"].endswith("/v2-msh"))
    facts = {e["url"]: e["valueString"] for e in msh["extension"]}
    assert facts == {"sendingApplication": "SIMRS", "sendingFacility": "RSUD^2.16.1^ISO", "receivingApplication": "HUB",
                     "receivingFacility": "KEMKES", "dateTimeOfMessage": "20240115083000+0700",
                     "messageType": "ADT^A04^ADT_A01", "messageControlId": "CTRL-9", "processingId": "P",
                     "versionId": "2.5.1", "characterSet": "UNICODE UTF-8"}
    sender = next(e["resource"] for e in b["entry"] if e["fullUrl"] == prov["agent"][0]["who"]["reference"])
    assert sender["resourceType"] == "Organization" and sender["name"] == "RSUD"
