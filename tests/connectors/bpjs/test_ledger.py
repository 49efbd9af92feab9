"""The ledger on both store backends: rows, the correction link, identities; and the memory ledger
keeps the same rules."""
from __future__ import annotations

import pytest

from simpul.connectors.bpjs.ledger import Ledger, MemoryLedger, StoreLedger, submissions
from simpul.store.database import open_database


def _exercise(ledger: Ledger) -> None:
    refused = ledger.record("vclaim", "sep", "V1", "sep|V1", status="refused", message="Peserta tidak aktif",
                            channel="adt", control_id="C1")
    assert refused.supersedes is None
    sent = ledger.record("vclaim", "sep", "V1", "sep|V1", status="sent", remote_id="0301R0111226V000001",
                         detail={"class": "3"})
    assert sent.supersedes == refused.id
    latest = ledger.latest("vclaim", "sep|V1")
    assert latest is not None and latest.remote_id == "0301R0111226V000001" and latest.detail == {"class": "3"}
    assert [row.status for row in ledger.for_visit("vclaim", "V1")] == ["refused", "sent"]
    assert ledger.latest("vclaim", "sep|V2") is None
    ledger.remember("satusehat", "patient", "urn:id:RSUD|MR1", "P1")
    ledger.remember("satusehat", "patient", "urn:id:RSUD|MR1", "P2")      # a later lookup replaces it
    assert ledger.identity("satusehat", "patient", "urn:id:RSUD|MR1") == "P2"
    assert ledger.identity("satusehat", "patient", "urn:id:RSUD|MR9") is None


def test_memory_ledger() -> None:
    _exercise(MemoryLedger())


def test_store_ledger(database_url: str) -> None:
    open_database(database_url).dispose()          # the engine migrates; the ledger only opens
    ledger = StoreLedger(database_url)
    try:
        _exercise(ledger)
        with ledger.engine.connect() as connection:
            assert [row.status for row in submissions(connection, service="vclaim")] == ["sent", "refused"]
            assert submissions(connection, service="vclaim", status="refused")[0].message == "Peserta tidak aktif"
    finally:
        ledger.close()


@pytest.mark.parametrize("status", ["sent", "cancelled"])
def test_a_repeat_of_the_same_outcome_carries_no_new_link(status: str) -> None:
    ledger = MemoryLedger()
    ledger.record("satusehat", "Encounter", "V1", "Encounter|V1", status=status)
    assert ledger.record("satusehat", "Encounter", "V1", "Encounter|V1", status=status).supersedes is None
