"""The tariff table: config/tariffs.csv, which analysts edit and `simpul validate` checks.

Columns (a header row names them, in any order):
    service_code, description, class, payer, price, valid_from, valid_to, tarif_rs
`class` is a room class (PV2-2, e.g. KELAS1, VIP) or `*` for any; `payer` is BPJS, INSURANCE,
SELF_PAY, an insurer id (IN1-3) or `*`; `price` is integer rupiah (no separators, > 0: a free
service is not in the table, so nothing is ever priced at zero by accident); valid_from/valid_to
are YYYY-MM-DD (valid_to may be empty: open-ended), both inclusive; `tarif_rs` is the E-Klaim
bucket (indonesia.md 2.3) the amount is reported under.

Lookup: the rows of the code valid on the service date; the most specific wins (an insurer id
over a payer type over `*`, then a class over `*`). Two rows equally specific and overlapping in
time are a validation error, so the answer never depends on row order.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from simpul.errors import ConfigError

COLUMNS = ("service_code", "description", "class", "payer", "price", "valid_from", "valid_to", "tarif_rs")
PAYER_TYPES = ("BPJS", "INSURANCE", "SELF_PAY")
# E-Klaim set_claim_data tarif_rs keys (specs/indonesia.md 2.3)
TARIF_RS_BUCKETS = (
    "prosedur_non_bedah", "prosedur_bedah", "konsultasi", "tenaga_ahli", "keperawatan", "penunjang",
    "radiologi", "laboratorium", "pelayanan_darah", "rehabilitasi", "kamar", "rawat_intensif", "obat",
    "obat_kronis", "obat_kemoterapi", "alkes", "bmhp", "sewa_alat",
)
OPEN_END = dt.date(9999, 12, 31)


@dataclass(frozen=True, slots=True)
class Tariff:
    service_code: str
    description: str
    room_class: str
    payer: str
    price: int
    valid_from: dt.date
    valid_to: dt.date
    tarif_rs: str
    line: int


@dataclass(frozen=True, slots=True)
class Finding:
    """`file:line:field column: reason`, the shape of every `simpul validate` finding (field = CSV position)."""

    line: int
    column: str
    reason: str
    field: int = 1

    def render(self, path: Path) -> str:
        return f"{path}:{self.line}:{self.field} {self.column}: {self.reason}"


class TariffTable:
    def __init__(self, rows: list[Tariff]) -> None:
        self._by_code: dict[str, list[Tariff]] = {}
        for row in rows:
            self._by_code.setdefault(row.service_code, []).append(row)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._by_code.values())

    def lookup(self, code: str, *, service_date: str, room_class: str, payer_type: str,
               payer_id: str) -> Tariff | None:
        day = _date(service_date) or dt.date.today()
        best: tuple[int, Tariff] | None = None
        for row in self._by_code.get(code, []):
            if not row.valid_from <= day <= row.valid_to:
                continue
            payer_rank = 2 if payer_id and row.payer == payer_id else 1 if row.payer == payer_type else \
                0 if row.payer == "*" else -1
            class_rank = 1 if row.room_class == room_class and room_class else 0 if row.room_class == "*" else -1
            if payer_rank < 0 or class_rank < 0:
                continue
            rank = payer_rank * 2 + class_rank
            if best is None or rank > best[0]:
                best = (rank, row)
        return best[1] if best else None


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def read_tariffs(path: Path) -> tuple[list[Tariff], list[Finding]]:
    """Every row that reads, and a finding (line, column, reason) for every one that does not."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tariff table ({exc.strerror})") from exc
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        return [], [Finding(1, ",".join(missing), "column missing from the header row")]
    rows: list[Tariff] = []
    findings: list[Finding] = []
    for record in reader:
        line = reader.line_num
        values = {key: (value or "").strip() for key, value in record.items() if key}
        if not any(values.values()):
            continue
        problems = _check(values)
        header = list(reader.fieldnames or [])
        findings += [Finding(line, column, reason, header.index(column) + 1) for column, reason in problems]
        if problems:
            continue
        rows.append(Tariff(values["service_code"], values["description"], values["class"] or "*",
                           values["payer"] or "*", int(values["price"]), _date(values["valid_from"]) or dt.date.min,
                           _date(values["valid_to"]) or OPEN_END if values["valid_to"] else OPEN_END,
                           values["tarif_rs"], line))
    findings += _overlaps(rows)
    return rows, findings


def _check(values: dict[str, str]) -> list[tuple[str, str]]:
    problems = []
    if not values["service_code"]:
        problems.append(("service_code", "required"))
    price = values["price"]
    if not price.isdigit():
        problems.append(("price", f"'{price}' is not an integer number of rupiah (digits only, no separators)"))
    elif int(price) <= 0:
        problems.append(("price", "must be > 0 (leave a service out instead: it then waits as unpriced)"))
    if _date(values["valid_from"]) is None:
        problems.append(("valid_from", f"'{values['valid_from']}' is not a date (YYYY-MM-DD)"))
    if values["valid_to"] and _date(values["valid_to"]) is None:
        problems.append(("valid_to", f"'{values['valid_to']}' is not a date (YYYY-MM-DD)"))
    start, end = _date(values["valid_from"]), _date(values["valid_to"])
    if start and end and end < start:
        problems.append(("valid_to", "is before valid_from"))
    if values["tarif_rs"] not in TARIF_RS_BUCKETS:
        close = [b for b in TARIF_RS_BUCKETS if b.startswith(values["tarif_rs"][:4])] if values["tarif_rs"] else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(("tarif_rs", f"'{values['tarif_rs']}' is not an E-Klaim tarif_rs bucket{hint}"))
    return problems


def _overlaps(rows: list[Tariff]) -> list[Finding]:
    findings = []
    seen: dict[tuple[str, str, str], list[Tariff]] = {}
    for row in rows:
        key = (row.service_code, row.room_class, row.payer)
        for other in seen.get(key, []):
            if row.valid_from <= other.valid_to and other.valid_from <= row.valid_to:
                findings.append(Finding(row.line, "valid_from", f"overlaps line {other.line} (same service_code, "
                                                                f"class and payer): which price applies is unclear",
                                        COLUMNS.index("valid_from") + 1))
        seen.setdefault(key, []).append(row)
    return findings


def load_tariffs(path: Path) -> TariffTable:
    """The table, or ConfigError naming the first finding (the engine refuses a broken table)."""
    rows, findings = read_tariffs(path)
    if findings:
        raise ConfigError(f"{findings[0].render(path)} ({len(findings)} finding(s); run `simpul validate`)")
    return TariffTable(rows)
