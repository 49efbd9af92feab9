"""The REST flavour of the ERP contract (ERPNext-style token auth): invoices posted once, payments polled back."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simpul.billing.reconciliation import daily_report
from simpul.connectors.erp import ErpClient, ErpConfig
from simpul.errors import ConnectorRejected

from tests.billing.test_encounter_to_cash import EXPECTED_TOTAL, STREAM, TARIFFS, send_all
from tests.fakes.rest_erp import API_KEY, API_SECRET, RestErp
from tests.helpers import EngineHarness, free_port


@pytest.fixture
def rest_erp() -> Iterator[RestErp]:
    server = RestErp().start()
    yield server
    server.stop()


def rest_config(erp: RestErp, secret: str = API_SECRET) -> dict[str, object]:
    return {"rest": {"base_url": erp.base_url, "api_key": API_KEY, "api_secret": secret}, "timeout": 5}


async def test_invoice_goes_to_a_rest_erp_once_and_its_payment_comes_back(harness: EngineHarness, rest_erp: RestErp,
                                                                         tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "tariffs.csv").write_text(TARIFFS)
    port = free_port()
    feed = (f"name: feed\nsource:\n  mllp: {{host: 127.0.0.1, port: {port}}}\n"
            f"destinations:\n  - label: archive\n    payload: raw\n    order_by: none\n"
            f"    file: {{directory: {tmp_path / 'archive'}}}\n")
    to_erp = ("name: invoices-to-erp\nsource:\n  events: {types: [invoice_generated]}\n"
              "destinations:\n  - label: erp\n    order_by: none\n"
              f"    erp: {{rest: {{base_url: '{rest_erp.base_url}', api_key: {API_KEY}, api_secret: {API_SECRET}}}}}\n")
    engine = await harness.start({"feed.yaml": feed, "erp.yaml": to_erp}, billing={
        "enabled": True, "interval": 0.05, "settle": 0.2, "poll_interval": 0.2, "erp": rest_config(rest_erp)})
    await send_all(port, STREAM)
    await harness.wait_for(lambda: rest_erp.invoices, timeout=20)
    (posted,) = rest_erp.invoices.values()
    assert posted["billedAmount"] == EXPECTED_TOTAL and len(posted["lines"]) == 7
    rest_erp.record_payment(posted["erpInvoiceNo"], EXPECTED_TOTAL)
    await harness.wait_for(lambda: harness.sql("SELECT 1 FROM billing_invoices WHERE status = 'paid'"), timeout=10)
    report = await engine.read(daily_report)
    assert report["open_balances"] == [] and report["per_payer"]["BPJS"]["paid"] == EXPECTED_TOTAL


def test_a_replayed_post_gets_duplicate_and_the_same_number_and_a_bad_token_is_final(rest_erp: RestErp) -> None:
    client = ErpClient(ErpConfig.model_validate(rest_config(rest_erp)))
    request = {"idempotencyKey": "K1", "invoiceNo": "I1", "encounterId": "V1", "mrn": "M1",
               "payer": {"type": "SELF_PAY", "id": "", "ref": ""}, "serviceDate": "2026-12-01", "currency": "IDR",
               "total": 1000, "claimedAmount": None, "lines": []}
    first = client.post_charges(request)
    assert first[0] == "ACCEPTED" and client.post_charges(request) == ("DUPLICATE", first[1])
    assert len(rest_erp.invoices) == 1
    wrong = ErpClient(ErpConfig.model_validate(rest_config(rest_erp, secret="wrong")))
    with pytest.raises(ConnectorRejected, match="401"):
        wrong.post_charges(request)
    client.close()
    wrong.close()
