"""TXA + OBX -> DocumentReference (IG TXA[DocumentReference], OBX[DocumentReference])."""
from __future__ import annotations

import base64
from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext
from simpul.mappings.segments.results import ed_attachment
from simpul.v2 import Segment

# TXA-17 document completion status (v2 table 0271) -> DocumentReference.docStatus
_DOC_STATUS = {"AU": "final", "LA": "final", "DO": "preliminary", "IP": "preliminary", "IN": "preliminary",
               "PA": "preliminary", "DI": "preliminary", "CA": "entered-in-error"}


def map_document(ctx: MapContext, txa: Segment, obxs: list[Segment]) -> str:
    enc = ctx.enc
    res: dict[str, Any] = {"resourceType": "DocumentReference"}
    master = dt.ei(ctx, txa.first(12)) if txa.first(12) else None
    if master:
        res["masterIdentifier"] = master
    filler = dt.ei(ctx, txa.first(16), "FILL") if txa.first(16) else None
    placer = dt.ei(ctx, txa.first(14), "PLAC") if txa.first(14) else None
    identifiers = [i for i in (filler, placer) if i]
    if identifiers:
        res["identifier"] = identifiers
    completion = txa.text(17).upper()
    res["status"] = "entered-in-error" if completion == "CA" else "current"
    doc_status = _DOC_STATUS.get(completion)
    if doc_status and doc_status != "entered-in-error":
        res["docStatus"] = doc_status
    kind = txa.first(2)
    if kind:
        cc = dt.cwe(ctx, kind)
        if cc:
            res["type"] = cc
    if ctx.patient:
        res["subject"] = {"reference": ctx.patient}
    when = dt.ts_field(ctx, txa.first(4)) or dt.ts_field(ctx, txa.first(6))
    if when and "T" in when:
        res["date"] = when
    authors = [a for a in (dt.practitioner(ctx, r) for r in txa.reps(9) + txa.reps(5)) if a]
    if authors:
        res["author"] = [{"reference": a} for a in dict.fromkeys(authors)]
    authenticators = [a for a in (dt.practitioner(ctx, r) for r in txa.reps(22) + txa.reps(10)) if a]
    if authenticators:
        res["authenticator"] = {"reference": authenticators[0]}
    contents = []
    text_lines: list[str] = []
    for obx in obxs:
        if obx.text(2).upper() in ("ED", "RP") and obx.text(2).upper() == "ED":
            att = ed_attachment(ctx, obx.first(5))
            if att:
                contents.append({"attachment": att})
        else:
            text_lines.extend(enc.decode(r) for r in obx.reps(5))
    if text_lines:
        data = base64.b64encode("\n".join(text_lines).encode("utf-8")).decode("ascii")
        contents.insert(0, {"attachment": {"contentType": "text/plain; charset=utf-8", "data": data}})
    if not contents:
        contents.append({"attachment": {"title": txa.text(2, 2) or "document without content"}})
    res["content"] = contents
    if ctx.encounter:
        res["context"] = {"encounter": [{"reference": ctx.encounter}]}
    key = (f"{master.get('system', '')}|{master['value']}" if master
           else f"{identifiers[0].get('system', '')}|{identifiers[0]['value']}" if identifiers else ctx.key(txa))
    match = master if master and master.get("system") else None
    return ctx.builder.add(res, key, identifier=match)
