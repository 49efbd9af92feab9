"""Patient administration events that change identity rather than a visit: A29 delete person
information, A41 merge account, A47 change patient identifier list. The IG has no message maps for
these (only MRG[Account]); the rules are ours and documented in docs/mappings/index.md.

- A29: the Patient (PID) is sent with `active: false`, not deleted: a FHIR DELETE would orphan every
  Encounter, Observation and Provenance that points at it, and most servers refuse it then. PV1 and the
  rest of the message are not mapped (the event is about the person, not a visit).
- A41: PID-18 is the surviving Account (active); MRG-3 the merged-away Account (IG MRG[Account]:
  identifier = MRG-3), sent with status `inactive`. R4 Account has no replaced-by link, so the pair is
  tied together by the Provenance that targets both.
- A47: for each PID/MRG pair the Patient is found by the prior identifier (MRG-1, the first with a
  system) and updated in place to carry PID-3; the prior identifier stays with use `old`. The resource
  keeps its id, so every existing reference to the Patient stays valid ("keep links"), and a replay
  matches the same Patient again.
"""
from __future__ import annotations

from typing import Any

from simpul.errors import MappingError
from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext
from simpul.mappings.segments import financial
from simpul.mappings.segments.encounter import map_encounter
from simpul.mappings.segments.patient import business_identifier, map_patient
from simpul.v2 import Segment


def pid_mrg_pairs(ctx: MapContext) -> list[tuple[Segment, Segment | None]]:
    """Each PID with the MRG that follows it before the next PID (None when there is none).

    Raises MappingError when the message has no PID.
    """
    segs = ctx.msg.segments
    pairs: list[tuple[Segment, Segment | None]] = []
    for i, seg in enumerate(segs):
        if seg.name == "PID":
            nxt = next((s for s in segs[i + 1:] if s.name in ("MRG", "PID")), None)
            pairs.append((seg, nxt if nxt is not None and nxt.name == "MRG" else None))
    if not pairs:
        raise MappingError("PID segment missing", segment="PID")
    return pairs


def map_patient_delete(ctx: MapContext) -> None:
    """ADT^A29: the Patient marked inactive."""
    pid = ctx.msg.one("PID")
    if pid is None:
        raise MappingError("PID segment missing", segment="PID")
    ctx.patient = map_patient(ctx, pid, ctx.msg.one("PD1"), active=False)


def map_account_merge(ctx: MapContext) -> None:
    """ADT^A41: surviving Account (PID-18) and the merged-away Account (MRG-3, inactive)."""
    pid, mrg = pid_mrg_pairs(ctx)[0]
    ctx.patient = map_patient(ctx, pid, ctx.msg.one("PD1"))
    pv1 = ctx.msg.one("PV1")
    if pv1 is not None and any(f and f != '""' for f in pv1.fields[2:]):
        map_encounter(ctx, pv1, ctx.msg.one("PV2"))
    if mrg is None:
        raise MappingError("MRG segment missing after PID", segment="MRG")
    prior = dt.cx(ctx, mrg.first(3)) if mrg.first(3) else None
    if prior is None:
        raise MappingError("no prior patient account number (MRG-3 empty)", segment="MRG", field=3)
    financial.map_account(ctx, pid)
    res: dict[str, Any] = {"resourceType": "Account", "identifier": [prior], "status": "inactive",
                           "subject": [{"reference": ctx.patient}]}
    ctx.builder.add(res, f"{prior.get('system', ctx.patient)}|{prior['value']}", identifier=prior)


def map_identifier_change(ctx: MapContext) -> None:
    """ADT^A47: each Patient found by its prior identifier (MRG-1) and given the new list (PID-3)."""
    for pid, mrg in pid_mrg_pairs(ctx):
        if mrg is None:
            raise MappingError("MRG segment missing after PID", segment="MRG")
        prior = [i for i in (dt.cx(ctx, r) for r in mrg.reps(1)) if i]
        if not prior:
            raise MappingError("no prior patient identifier (MRG-1 empty)", segment="MRG", field=1)
        match = business_identifier(ctx, prior)
        if match is None:
            # nothing to find the old record by: map the new identity and keep the old one as history
            ctx.skip(mrg, 1, "prior identifier has no assigning authority, no in-place update")
            ref = map_patient(ctx, pid, None)
            patient = ctx.builder.get(ref)
            if patient is not None:
                patient.setdefault("identifier", []).extend({**i, "use": "old"} for i in prior)
        else:
            ref = map_patient(ctx, pid, None, match_identifier=match)
        ctx.patient = ctx.patient or ref
