"""The tariff table as an analyst edits it: `simpul validate` findings, lookups, and the billing commands."""
from __future__ import annotations

from pathlib import Path

from simpul.billing.tariffs import TariffTable, read_tariffs

from tests.engine.test_cli import FINDING, simpul, write_channels
from tests.fakes.spyne_erp import SpyneErp
from tests.helpers import REPO_ROOT, file_destination_channel

HEADER = "service_code,description,class,payer,price,valid_from,valid_to,tarif_rs\n"


def test_validate_names_each_bad_tariff_row_by_file_line_and_column(tmp_path: Path) -> None:
    write_channels(tmp_path / "channels", {"adt.yaml": file_destination_channel("adt", 0, tmp_path / "out")})
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "tariffs.csv").write_text(
        HEADER
        + "BED,Kamar VIP,VIP,*,750000,2026-01-01,,kamar\n"
        + "LAB-HB,Hemoglobin,*,*,45.000,2026-01-01,,laboratorium\n"      # a thousands separator
        + "RAD-X,Thorax,*,*,0,2026-01-01,,radiologi\n"                   # priced at zero
        + "OBAT-1,Obat,*,*,2000,2026-13-01,,obat\n"                        # no such month
        + "KONS,Konsultasi,*,*,150000,2026-01-01,,konsul\n"               # not a bucket
        + "BED,Kamar VIP,VIP,*,800000,2026-06-01,,kamar\n")                # overlaps line 2
    result = simpul("validate", "channels", cwd=tmp_path)
    assert result.code == 1 and "Traceback" not in result.err
    found = {(m["line"], m["key"]): m for m in map(FINDING.match, result.err.splitlines()) if m}
    assert len(found) == len(result.err.splitlines()) == 5, result.err
    assert "not an integer number of rupiah" in found[("3", "price")]["reason"]
    assert found[("3", "price")]["col"] == "5" and found[("3", "price")]["file"] == "config/tariffs.csv"
    assert "must be > 0" in found[("4", "price")]["reason"]
    assert "not a date" in found[("5", "valid_from")]["reason"]
    assert "did you mean 'konsultasi'" in found[("6", "tarif_rs")]["reason"]
    assert "overlaps line 2" in found[("7", "valid_from")]["reason"]


def test_the_shipped_tariff_table_is_valid() -> None:
    rows, findings = read_tariffs(REPO_ROOT / "config" / "tariffs.csv")
    assert findings == [] and rows


def test_the_most_specific_tariff_valid_on_the_service_date_wins(tmp_path: Path) -> None:
    path = tmp_path / "tariffs.csv"
    path.write_text(HEADER + "RAD,Thorax,*,*,180000,2026-01-01,,radiologi\n"
                    "RAD,Thorax,*,BPJS,120000,2026-01-01,2026-06-30,radiologi\n"
                    "RAD,Thorax,*,BPJS,125000,2026-07-01,,radiologi\n"
                    "RAD,Thorax,VIP,ASURANSI-X,250000,2026-01-01,,radiologi\n")
    rows, findings = read_tariffs(path)
    table = TariffTable(rows)
    assert findings == []

    def price(day: str, room: str, payer: str, insurer: str = "") -> int | None:
        found = table.lookup("RAD", service_date=day, room_class=room, payer_type=payer, payer_id=insurer)
        return found.price if found else None

    assert price("2026-03-01", "KELAS3", "BPJS") == 120000
    assert price("2026-08-01", "KELAS3", "BPJS") == 125000
    assert price("2026-08-01", "KELAS3", "SELF_PAY") == 180000
    assert price("2026-08-01", "VIP", "INSURANCE", "ASURANSI-X") == 250000
    assert price("2025-12-31", "KELAS3", "BPJS") is None        # before any row: unpriced, never zero
    assert table.lookup("NOPE", service_date="2026-08-01", room_class="", payer_type="BPJS", payer_id="") is None


def test_billing_commands_on_an_empty_store(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "simpul.yaml").write_text(f"database: {{url: 'sqlite:///{tmp_path}/s.db'}}\n")
    assert simpul("migrate", cwd=tmp_path).code == 0
    assert simpul("billing", "unpriced", cwd=tmp_path).out == "no unpriced charges\n"
    assert simpul("reconciliation", "open", cwd=tmp_path).out == "no open reconciliation items\n"
    report = simpul("reconciliation", "report", "--csv", cwd=tmp_path)
    assert report.code == 0 and report.out.startswith("section,invoice_no,erp_invoice_no,kind,")
    missing = simpul("reconciliation", "resolve", "7", cwd=tmp_path)
    assert missing.code == 1 and "no open reconciliation item 7" in missing.err and "Traceback" not in missing.err
    no_erp = simpul("billing", "poll", cwd=tmp_path)
    assert no_erp.code == 1 and "billing.erp is not set" in no_erp.err


def test_billing_poll_reads_the_erp_from_the_command_line(tmp_path: Path) -> None:
    erp = SpyneErp().start()
    try:
        erp.state.add_staff(staffId="D9", nik="1", name="dr. X", role="doctor", specialty=None, licenseNo=None,
                            active=True)
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "simpul.yaml").write_text(
            f"database: {{url: 'sqlite:///{tmp_path}/s.db'}}\nbilling: {{erp: {{soap: {{wsdl: '{erp.wsdl_url}'}}}}}}\n")
        assert simpul("migrate", cwd=tmp_path).code == 0
        first = simpul("billing", "poll", cwd=tmp_path)
        assert (first.code, first.out) == (0, "applied 1 item(s) from the ERP (reconciliations, stock alerts, staff)\n")
        again = simpul("billing", "poll", cwd=tmp_path)      # from the kept cursor: nothing new
        assert again.out.startswith("applied 0 item(s)")
        erp.state.down = True
        down = simpul("billing", "poll", cwd=tmp_path)
        assert down.code == 1 and "ERP poll failed" in down.err and "Traceback" not in down.err
    finally:
        erp.stop()
