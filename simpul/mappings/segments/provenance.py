"""MSH + EVN -> Provenance (IG MSH[Provenance-Transformation], EVN[Provenance]).

A transaction Bundle has no MessageHeader (FHIR allows MessageHeader only as the first entry of a
`message` Bundle, and a transaction is what a FHIR server applies with conditional create/update).
The Provenance keeps what the MSH says: recorded (EVN-2, else MSH-7), the sender (MSH-4, else
MSH-3) as author, EVN-5 as enterer, EVN-4 as reason, the event as activity, MSH-10 as the source
entity, and MSH-3..MSH-18 as sent in the `v2-msh` extension; plus the Z-segments when kept.
"""
from __future__ import annotations

from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext

Z_SEGMENT_EXT = "https://simpul.dev/fhir/StructureDefinition/v2-z-segment"
MESSAGE_EXT = "https://simpul.dev/fhir/StructureDefinition/v2-message"
# The MSH facts a MessageHeader would hold, as sent (v2 encoding kept): one complex extension.
MSH_EXT = "https://simpul.dev/fhir/StructureDefinition/v2-msh"
MSH_FIELDS = (("sendingApplication", 3), ("sendingFacility", 4), ("receivingApplication", 5),
              ("receivingFacility", 6), ("dateTimeOfMessage", 7), ("messageType", 9), ("messageControlId", 10),
              ("processingId", 11), ("versionId", 12), ("countryCode", 17), ("characterSet", 18))


def msh_extension(ctx: MapContext) -> dict[str, Any]:
    """MSH-3..MSH-18 (those valued) as sub-extensions of MSH_EXT; MSH carries no patient data."""
    msh = ctx.msg.msh
    subs = [{"url": name, "valueString": msh[n]} for name, n in MSH_FIELDS if msh[n] and msh[n] != '""']
    return {"url": MSH_EXT, "extension": subs}


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
    ext = [{"url": MESSAGE_EXT, "valueString": f"{msg_type} {ctx.msg.msh.text(12)}".strip()}, msh_extension(ctx)]
    ext += [{"url": Z_SEGMENT_EXT, "valueString": z} for z in z_segments]
    res["extension"] = ext
    ctx.builder.add(res, f"{ctx.control_id}|provenance|{recorded}")
