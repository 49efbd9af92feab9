"""MSH + EVN -> Provenance (IG MSH[Provenance-Transformation], EVN[Provenance]).

A transaction Bundle has no MessageHeader (that belongs to message Bundles); the Provenance keeps
what the MSH says about the message: who sent it, when, its control id and event, and the
Z-segments when the channel keeps them.
"""
from __future__ import annotations

from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext

Z_SEGMENT_EXT = "https://simpul.dev/fhir/StructureDefinition/v2-z-segment"
MESSAGE_EXT = "https://simpul.dev/fhir/StructureDefinition/v2-message"


def map_provenance(ctx: MapContext, z_segments: list[str]) -> None:
    msh = ctx.msg.msh
    enc = ctx.enc
    targets = [{"reference": e["fullUrl"]} for e in ctx.builder.entries
               if e["resource"]["resourceType"] not in ("Practitioner", "Organization", "Location")]
    if not targets:
        return
    recorded = dt.ts_field(ctx, msh.first(7))
    evn = ctx.msg.one("EVN")
    if evn is not None:
        recorded = dt.ts_field(ctx, evn.first(2)) or recorded
    if not recorded or "T" not in recorded:
        # Provenance.recorded is a FHIR instant (time and offset required): a message whose MSH-7
        # has no offset, with no channel default_timezone, gets no Provenance rather than a guess.
        ctx.skip(msh, 7, "no timestamp with offset, Provenance left out")
        return
    app = msh.comps(3)
    fac = msh.comps(4)
    sender = dt.organization(ctx, dt.leaf(enc, fac, 1), dt.leaf(enc, fac, 2),
                             "urn:ietf:rfc:3986" if dt.leaf(enc, fac, 2) else None) \
        or dt.organization(ctx, dt.leaf(enc, app, 1))
    res: dict[str, Any] = {"resourceType": "Provenance", "target": targets, "recorded": recorded}
    msg_type = "^".join(x for x in (ctx.msg.message_code, ctx.msg.trigger_event, ctx.msg.structure) if x)
    res["activity"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                                   "code": ctx.msg.trigger_event or ctx.msg.message_code,
                                   "display": msg_type}]}
    agent: dict[str, Any] = {"type": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]}}
    if sender:
        agent["who"] = {"reference": sender}
    else:
        agent["who"] = {"display": "unknown sender"}
    res["agent"] = [agent]
    if evn is not None:
        operator = evn.first(5)
        who = dt.practitioner(ctx, operator) if operator else None
        if who:
            res["agent"].append({"type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "enterer"}]}, "who": {"reference": who}})
        reason = evn.first(4)
        if reason:
            cc = dt.cwe(ctx, reason)
            if cc:
                res["reason"] = [cc]
    res["entity"] = [{"role": "source", "what": {"identifier": {"value": ctx.control_id or "unknown"},
                                                  "display": f"HL7v2 {msg_type} message"}}]
    ext = [{"url": MESSAGE_EXT, "valueString": f"{msg_type} {ctx.msg.msh.text(12)}".strip()}]
    ext += [{"url": Z_SEGMENT_EXT, "valueString": z} for z in z_segments]
    res["extension"] = ext
    ctx.builder.add(res, f"{ctx.control_id}|provenance|{recorded}")
