"""The two points where the E-Klaim discharge flow meets billing (encounter-to-cash).

`tarif_rs_for_visit` is the one input the claim needs from billing: the visit's charges summed per
E-Klaim tarif_rs bucket (integer rupiah). With `tarif_rs_from: billing` they are the charges of the
visit's invoice in encounter-to-cash's tables (`Ledger.billed_tarif_rs`, each charge carrying the
bucket its tariff row names); with `tarif_rs_from: message` they are the discharge message's FT1
segments, each put in a bucket by its charge code (FT1-7.1) through the channel's
`charge_buckets` (a code that already is a bucket name needs no entry).
`claim_result_for_invoice` is what goes back: the INA-CBG code and tariff, written onto the
invoice (`Ledger.claim_on_invoice`: inacbg_code, claimed_amount) and kept in the ledger.
"""
from __future__ import annotations

from typing import Any

from simpul.connectors.bpjs.eklaim import TARIF_RS_BUCKETS, ClaimResult
from simpul.connectors.bpjs.service import ServiceRejected
from simpul.connectors.bpjs.visit_v2 import VisitFacts


def tarif_rs_for_visit(facts: VisitFacts, charge_buckets: dict[str, str],
                       billed: dict[str, int] | None = None) -> dict[str, int]:
    """`billed`: the invoice's totals per bucket (tarif_rs_from: billing); else the message's FT1s."""
    totals = {bucket: 0 for bucket in TARIF_RS_BUCKETS}
    if billed is not None:
        strange = sorted(bucket or "(none)" for bucket in billed if bucket not in totals)
        if strange:
            raise ServiceRejected("E-Klaim", "tarif_rs", "local",
                                  f"invoiced charges in buckets E-Klaim does not have: {', '.join(strange)} "
                                  "(fix the tarif_rs column of the tariff table)", local=True)
        return {**totals, **billed}
    unmapped: set[str] = set()
    for charge in facts.charges:
        bucket = charge_buckets.get(charge.code, charge.code)
        if bucket not in totals:
            unmapped.add(charge.code or "(no FT1-7)")
            continue
        totals[bucket] += charge.amount
    if unmapped:
        raise ServiceRejected("E-Klaim", "tarif_rs", "local",
                              f"charge codes without a tarif_rs bucket: {', '.join(sorted(unmapped))} "
                              "(add them under charge_buckets)", local=True)
    return totals


def claim_result_for_invoice(result: ClaimResult) -> dict[str, Any]:
    """What the invoice keeps of the grouped claim (no patient data)."""
    return {"cbg_code": result.cbg_code, "cbg_description": result.cbg_description, "tariff": result.tariff,
            "special_cmg": list(result.special_cmg), "sent": result.sent}
