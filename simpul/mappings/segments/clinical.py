"""NK1 -> RelatedPerson, AL1 -> AllergyIntolerance, DG1 -> Condition, PR1 -> Procedure,
IN1/IN2 -> Coverage, GT1 -> RelatedPerson (guarantor), following the IG segment maps."""
from __future__ import annotations

from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.v2 import Segment

TERM = "http://terminology.hl7.org/CodeSystem/"


def _gender(ctx: MapContext, code: str, res: dict[str, Any]) -> None:
    if code:
        g = vocab.lookup("0001", code.upper(), ctx.unmapped)
        if g:
            res["gender"] = g


def map_related_person(ctx: MapContext, nk1: Segment) -> str | None:
    """NK1 -> RelatedPerson (IG NK1[RelatedPerson]); NK1-3 relationship via table 0063 -> v3-RoleCode."""
    enc = ctx.enc
    if ctx.patient is None:
        return None
    res: dict[str, Any] = {"resourceType": "RelatedPerson", "patient": {"reference": ctx.patient}}
    idents = [i for i in (dt.cx(ctx, r) for r in nk1.reps(33)) if i]
    if idents:
        res["identifier"] = idents
    names = [n for n in (dt.xpn(ctx, r) for r in nk1.reps(2)) if n]
    if names:
        res["name"] = names
    relationships = []
    rel = nk1.comps(3)
    rel_code = dt.leaf(enc, rel, 1)
    if rel_code:
        relationships.append(dt.coded(ctx, "0063", rel_code, dt.leaf(enc, rel, 2)))
    role = nk1.comps(7)
    role_code = dt.leaf(enc, role, 1)
    if role_code:
        relationships.append(dt.coded(ctx, "0131", role_code, dt.leaf(enc, role, 2)))
    if relationships:
        res["relationship"] = relationships
    telecom = [t for t in (dt.xtn(ctx, r, "home") for r in nk1.reps(5)) if t]
    telecom += [t for t in (dt.xtn(ctx, r, "work") for r in nk1.reps(6)) if t]
    if telecom:
        res["telecom"] = telecom
    addrs = [a for a in (dt.xad(ctx, r) for r in nk1.reps(4)) if a]
    if addrs:
        res["address"] = addrs
    _gender(ctx, nk1.text(15), res)
    bd = dt.date_only(nk1.text(16))
    if bd:
        res["birthDate"] = bd
    start, end = dt.dtm(ctx, nk1.text(8)), dt.dtm(ctx, nk1.text(9))
    if start or end:
        res["period"] = dt._period(start, end)
    lang = nk1.first(20)
    if lang:
        cc = dt.cwe(ctx, lang)
        if cc:
            res["communication"] = [{"language": cc}]
    return ctx.builder.add(res, ctx.key(nk1))


def map_allergy(ctx: MapContext, al1: Segment) -> str | None:
    """AL1 -> AllergyIntolerance: AL1-2 category (0127), AL1-3 code, AL1-4 reaction severity (0128),
    AL1-5 manifestation text, AL1-6 onset; clinicalStatus active (IG constant)."""
    enc = ctx.enc
    code = al1.first(3)
    cc = dt.cwe(ctx, code) if code else None
    if cc is None or ctx.patient is None:
        return None
    res: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": TERM + "allergyintolerance-clinical", "code": "active"}]},
        "patient": {"reference": ctx.patient},
        "code": cc,
    }
    kind = dt.leaf(enc, al1.comps(2), 1).upper()
    if kind:
        category = vocab.lookup("0127", kind, ctx.unmapped)
        if category:
            res["category"] = [category]
        res["type"] = "intolerance" if kind == "MC" else "allergy"
    severity_code = dt.leaf(enc, al1.comps(4), 1).upper()
    reaction: dict[str, Any] = {}
    severity = vocab.lookup("0128-severity", severity_code, ctx.unmapped) if severity_code else None
    if severity:
        reaction["severity"] = severity
    manifestations = [{"text": enc.decode(r)} for r in al1.reps(5)]
    if manifestations:
        reaction["manifestation"] = manifestations
        res["reaction"] = [reaction]
    onset = dt.dtm(ctx, al1.text(6))
    if onset:
        res["onsetDateTime"] = onset
    return ctx.builder.add(res, ctx.key(al1))


def map_condition(ctx: MapContext, dg1: Segment) -> str | None:
    """DG1 -> Condition (+ Encounter.diagnosis with DG1-6 use and DG1-15 rank)."""
    enc = ctx.enc
    code = dt.cwe(ctx, dg1.first(3)) if dg1.first(3) else None
    if code is None and dg1.text(4):
        code = {"text": dg1.text(4)}
    if code is None or ctx.patient is None:
        return None
    if dg1.text(4) and "text" not in code:
        code["text"] = dg1.text(4)
    res: dict[str, Any] = {"resourceType": "Condition", "subject": {"reference": ctx.patient}, "code": code}
    if dg1.text(21).upper() == "D":
        res["verificationStatus"] = {"coding": [{"system": TERM + "condition-ver-status",
                                                 "code": "entered-in-error"}]}
    if ctx.encounter:
        res["encounter"] = {"reference": ctx.encounter}
    onset = dt.dtm(ctx, dg1.text(5))
    if onset:
        res["onsetDateTime"] = onset
    recorded = dt.dtm(ctx, dg1.text(19))
    if recorded:
        res["recordedDate"] = recorded
    asserter = dt.practitioner(ctx, dg1.first(16)) if dg1.first(16) else None
    if asserter:
        res["asserter"] = {"reference": asserter}
    ident = dt.ei(ctx, dg1.first(20)) if dg1.first(20) else None
    if ident:
        res["identifier"] = [ident]
    ref = ctx.builder.add(res, f"{ident['value']}|{ctx.patient}" if ident else ctx.key(dg1))
    encounter = ctx.builder.get(ctx.encounter) if ctx.encounter else None
    if encounter is not None:
        diag: dict[str, Any] = {"condition": {"reference": ref}}
        use = dg1.text(6).upper()
        if use:
            diag["use"] = {"coding": [{"system": TERM + "diagnosis-role",
                                       "code": {"A": "AD", "W": "DD", "F": "DD"}.get(use, "billing")}]}
        rank = dt.number(dg1.text(15))
        if isinstance(rank, int) and rank > 0:
            diag["rank"] = rank
        encounter.setdefault("diagnosis", []).append(diag)
    _ = enc
    return ref


def map_procedure(ctx: MapContext, pr1: Segment) -> str | None:
    """PR1 -> Procedure: PR1-3 code, PR1-5 performed, PR1-12 performer (surgeon)."""
    code = dt.cwe(ctx, pr1.first(3)) if pr1.first(3) else None
    if code is None and pr1.text(4):
        code = {"text": pr1.text(4)}
    if code is None or ctx.patient is None:
        return None
    res: dict[str, Any] = {"resourceType": "Procedure", "status": "completed", "code": code,
                           "subject": {"reference": ctx.patient}}
    if ctx.encounter:
        res["encounter"] = {"reference": ctx.encounter}
    when = dt.dtm(ctx, pr1.text(5))
    if when:
        res["performedDateTime"] = when
    performers = [p for p in (dt.practitioner(ctx, r) for r in pr1.reps(11) + pr1.reps(12)) if p]
    if performers:
        res["performer"] = [{"actor": {"reference": p}} for p in performers]
    ident = dt.ei(ctx, pr1.first(19)) if pr1.first(19) else None
    if ident:
        res["identifier"] = [ident]
    return ctx.builder.add(res, ctx.key(pr1))


def map_coverage(ctx: MapContext, in1: Segment, in2: Segment | None = None) -> str | None:
    """IN1 (+IN2) -> Coverage. Thin IG map plus our choices: IN1-36 policy number -> identifier and
    subscriberId, IN1-3 -> payor identifier, IN1-17 self -> subscriber is the Patient."""
    enc = ctx.enc
    if ctx.patient is None:
        return None
    res: dict[str, Any] = {"resourceType": "Coverage", "status": "active",
                           "beneficiary": {"reference": ctx.patient}}
    identifiers: list[dict[str, Any]] = []
    plan = in1.first(2)
    if plan:
        p = dt.comps(enc, plan)
        code = dt.leaf(enc, p, 1)
        if code:
            identifiers.append({"value": code})
    policy = in1.text(36)
    if policy:
        identifiers.append({"type": {"coding": [{"system": dt.V2 + "0203", "code": "MB"}]}, "value": policy})
        res["subscriberId"] = policy
    insured = dt.cx(ctx, in1.first(49), default_type="MB") if in1.first(49) else None
    if insured:
        # IN1-49 insured's id number: the member id on the card (BPJS card number for JKN).
        identifiers.append(insured)
        res.setdefault("subscriberId", insured["value"])
    if identifiers:
        res["identifier"] = identifiers
    company = in1.first(4)
    company_ident = dt.cx(ctx, in1.first(3)) if in1.first(3) else None
    payor = dt.organization(ctx, dt.leaf(enc, dt.comps(enc, company), 1) if company else "",
                            company_ident["value"] if company_ident else "",
                            company_ident.get("system") if company_ident else None)
    if payor is None:
        payor = ctx.patient  # Coverage.payor is 1..*; the IG leaves this open, self-pay is the honest default
    res["payor"] = [{"reference": payor}]
    start, end = dt.date_only(in1.text(12)), dt.date_only(in1.text(13))
    if start or end:
        res["period"] = dt._period(start, end)
    plan_type = in1.first(15)
    if plan_type:
        res["type"] = {"coding": [{"system": dt.V2 + "0086", "code": dt.leaf(enc, dt.comps(enc, plan_type), 1)}]}
    rel = dt.leaf(enc, in1.comps(17), 1).upper()
    if rel:
        res["relationship"] = {"coding": [{"system": TERM + "subscriber-relationship",
                                           "code": {"SEL": "self", "SPO": "spouse", "CHD": "child"}.get(rel, "other")}]}
        if rel == "SEL":
            res["subscriber"] = {"reference": ctx.patient}
    group = in1.text(8)
    if group:
        res["class"] = [{"type": {"coding": [{"system": TERM + "coverage-class", "code": "group"}]},
                         "value": group, **({"name": in1.text(9)} if in1.text(9) else {})}]
    order = dt.number(in1.text(22))
    if isinstance(order, int) and order > 0:
        res["order"] = order
    _ = in2
    return ctx.builder.add(res, f"{ctx.patient}|IN1|{in1.text(1)}|{policy or plan}")


def map_guarantor(ctx: MapContext, gt1: Segment) -> str | None:
    """GT1 -> RelatedPerson (guarantor; the IG map is under construction): GT1-3 name, GT1-5 address,
    GT1-6/7 phones, GT1-11 relationship."""
    if ctx.patient is None:
        return None
    names = [n for n in (dt.xpn(ctx, r) for r in gt1.reps(3)) if n]
    if not names:
        return None
    res: dict[str, Any] = {"resourceType": "RelatedPerson", "patient": {"reference": ctx.patient}, "name": names,
                           "relationship": [{"coding": [{"system": TERM + "v3-RoleCode", "code": "GUAR"}]}]}
    addrs = [a for a in (dt.xad(ctx, r) for r in gt1.reps(5)) if a]
    if addrs:
        res["address"] = addrs
    telecom = [t for t in (dt.xtn(ctx, r, "home") for r in gt1.reps(6)) if t]
    telecom += [t for t in (dt.xtn(ctx, r, "work") for r in gt1.reps(7)) if t]
    if telecom:
        res["telecom"] = telecom
    bd = dt.date_only(gt1.text(8))
    if bd:
        res["birthDate"] = bd
    _gender(ctx, gt1.text(9), res)
    rel = gt1.text(11)
    if rel:
        res["relationship"].append(dt.coded(ctx, "0063", rel))
    return ctx.builder.add(res, ctx.key(gt1))
