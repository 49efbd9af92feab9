"""PID (+ PD1) -> Patient; MRG -> the merged-away Patient (IG PID[Patient], PD1[Patient])."""
from __future__ import annotations

from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings import identity
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.v2 import Segment

EXT = "http://hl7.org/fhir/StructureDefinition/"
UNMAPPED_CODE_EXT = "https://simpul.dev/fhir/StructureDefinition/v2-original-code"


RACE_EXT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
ETHNICITY_EXT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
# OMB race and ethnicity categories (CDC Race & Ethnicity code set), the ombCategory slice of US Core.
OMB_CODES = {"1002-5", "2028-9", "2054-5", "2076-8", "2106-3", "2135-2", "2186-5", "UNK", "ASKU"}
# PID-8 as some senders write it: the word instead of the table 0001 code.
SEX_WORDS = {"FEMALE": "F", "MALE": "M", "UNKNOWN": "U", "OTHER": "O", "PEREMPUAN": "F", "LAKI-LAKI": "M",
             "WANITA": "F", "PRIA": "M"}


def unmapped_code(table: str, code: str) -> dict[str, Any]:
    """Primitive-element extension that keeps a v2 code a FHIR `code` element cannot hold."""
    return {"extension": [{"url": UNMAPPED_CODE_EXT, "valueCoding": vocab.original_coding(table, code)}]}


def patient_identifiers(ctx: MapContext, pid: Segment) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                 dict[str, Any] | None]:
    """PID-3, PID-2, PID-4 [CX]; PID-19 national id; PID-20 driver's licence.

    Returns all of them (PID-3 first), and the PID-3 ones and the PID-19 one on their own for the
    match policy.
    A PID-3 value without an assigning authority gets the channel's `patient_identity.system`.
    """
    policy = ctx.options.patient_identity
    out: list[dict[str, Any]] = []
    pid_3: list[dict[str, Any]] = []
    for field in (3, 2, 4):
        for raw in pid.reps(field):
            ident = dt.cx(ctx, raw)
            if ident and field == 3 and policy.system and not ident.get("system") \
                    and not identity.is_national(ident):
                ident = {**{k: v for k, v in ident.items() if k != "value"}, "system": policy.system,
                         "value": ident["value"]}
            if ident and ident not in out:
                out.append(ident)
                if field == 3:
                    pid_3.append(ident)
    national: dict[str, Any] | None = None
    ssn = pid.text(19)
    if ssn:
        # PID-19 is "SSN" in the standard, but senders outside the US put their national id there:
        # its system follows MSH-17 (or the channel), never a US SSN by default.
        system, type_code = identity.national_id(policy, ctx.msg.msh.text(17))
        national = {"type": {"coding": [{"system": dt.V2 + "0203", "code": type_code}]}}
        if system:
            national["system"] = system
        national["value"] = ssn
        out.append(national)
    dln = pid.text(20)
    if dln:
        out.append({"type": {"coding": [{"system": dt.V2 + "0203", "code": "DL"}]}, "value": dln})
    return out, pid_3, national


def business_identifier(ctx: MapContext, identifiers: list[dict[str, Any]],
                        national: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The identifier a Patient is matched on under the channel's identity policy (identity.py)."""
    return identity.match_key(ctx.options.patient_identity, identifiers, national)


def map_patient(ctx: MapContext, pid: Segment, pd1: Segment | None = None, *, active: bool | None = None,
                replaced_identifier: dict[str, Any] | None = None,
                match_identifier: dict[str, Any] | None = None) -> str:
    """PID (+PD1) -> Patient, conditional update on the first identifier with a system.

    `match_identifier` (A47: the identifier being replaced) overrides the match: the request finds
    the Patient by it, and it stays on the Patient with use `old`, so the same resource (and every
    reference to it) carries the new identifier list.
    """
    enc = ctx.enc
    res: dict[str, Any] = {"resourceType": "Patient"}
    extensions: list[dict[str, Any]] = []
    identifiers, pid_3, national = patient_identifiers(ctx, pid)
    if identifiers:
        res["identifier"] = identifiers
    if active is not None:
        res["active"] = active
    names = [n for n in (dt.xpn(ctx, r) for r in pid.reps(5)) if n]
    names += [{**n, "use": "maiden"} for n in (dt.xpn(ctx, r) for r in pid.reps(9)) if n]
    if names:
        res["name"] = names
    telecom = [t for t in (dt.xtn(ctx, r, "home") for r in pid.reps(13)) if t]
    telecom += [t for t in (dt.xtn(ctx, r, "work") for r in pid.reps(14)) if t]
    telecom += [t for t in (dt.xtn(ctx, r) for r in pid.reps(40)) if t]
    if telecom:
        res["telecom"] = telecom
    sex = pid.text(8).strip().upper()
    sex = SEX_WORDS.get(sex, sex)
    if sex:
        gender = vocab.lookup("0001", sex, ctx.unmapped)
        if gender:
            res["gender"] = gender
        else:
            res["_gender"] = unmapped_code("0001", sex)
    birth = pid.text(7)
    if birth:
        bd = dt.date_only(birth)
        if bd:
            res["birthDate"] = bd
            full = dt.dtm(ctx, birth)
            if full and "T" in full:
                res["_birthDate"] = {"extension": [{"url": EXT + "patient-birthTime", "valueDateTime": full}]}
        else:
            ctx.skip(pid, 7, "not a v2 date")
    deceased_at = dt.dtm(ctx, pid.text(29))
    if deceased_at:
        res["deceasedDateTime"] = deceased_at
    elif pid.text(30).upper() in ("Y", "N"):
        res["deceasedBoolean"] = pid.text(30).upper() == "Y"
    addresses = [a for a in (dt.xad(ctx, r) for r in pid.reps(11)) if a]
    county = pid.text(12)
    if county and addresses and "district" not in addresses[0]:
        addresses[0]["district"] = county
    if addresses:
        res["address"] = addresses
    marital = pid.comps(16)
    if pid.first(16):
        code = dt.leaf(enc, marital, 1)
        res["maritalStatus"] = dt.coded(ctx, "0002", code, dt.leaf(enc, marital, 2)) or {"text": dt.leaf(enc, marital, 2)}
    if pid.text(25):
        order = dt.number(pid.text(25))
        if isinstance(order, int):
            res["multipleBirthInteger"] = order
    elif pid.text(24).upper() in ("Y", "N"):
        res["multipleBirthBoolean"] = pid.text(24).upper() == "Y"
    language = pid.first(15)
    if language:
        lang = dt.cwe(ctx, language)
        if lang:
            res["communication"] = [{"language": lang}]
    mother = pid.text(6, 1)
    if mother:
        extensions.append({"url": EXT + "patient-mothersMaidenName", "valueString": mother})
    religion = pid.first(17)
    if religion:
        cc = dt.cwe(ctx, religion)
        if cc:
            extensions.append({"url": EXT + "patient-religion", "valueCodeableConcept": cc})
    birthplace = pid.text(23)
    if birthplace:
        extensions.append({"url": EXT + "patient-birthPlace", "valueAddress": {"text": birthplace}})
    for field, url in ((10, RACE_EXT), (22, ETHNICITY_EXT)):
        # PID-10 race / PID-22 ethnic group: the IG's extensions (US Core shape: coded answers plus the
        # required text); codes outside the OMB categories go under "detailed".
        for raw in pid.reps(field):
            cc = dt.cwe(ctx, raw)
            if not cc:
                continue
            parts = [{"url": "ombCategory" if c.get("code") in OMB_CODES else "detailed", "valueCoding": c}
                     for c in cc.get("coding", []) if c.get("code") and c.get("system")]
            text = cc.get("text") or next((c.get("display") or c.get("code") for c in cc.get("coding", [])), "")
            extensions.append({"url": url, "extension": parts + [{"url": "text", "valueString": text}]})
    for raw in pid.reps(26):
        cc = dt.cwe(ctx, raw)
        if cc:
            extensions.append({"url": EXT + "patient-citizenship",
                               "extension": [{"url": "code", "valueCodeableConcept": cc}]})
    if pd1 is not None:
        for raw in pd1.reps(4):
            gp = dt.practitioner(ctx, raw)
            if gp:
                res.setdefault("generalPractitioner", []).append({"reference": gp})
        for raw in pd1.reps(3):
            org = dt.xon(ctx, raw)
            if org:
                res.setdefault("generalPractitioner", []).append({"reference": org})
    if replaced_identifier is not None:
        res["link"] = [{"other": {"identifier": replaced_identifier}, "type": "replaces"}]
    if extensions:
        res["extension"] = extensions
    if match_identifier is not None:
        old = {**match_identifier, "use": "old"}
        res["identifier"] = [i for i in identifiers if i != match_identifier] + [old]
        key = f"{match_identifier['system']}|{match_identifier['value']}"
        return ctx.builder.add(res, key, identifier=match_identifier)
    match = business_identifier(ctx, pid_3, national)
    if match is None:
        # Nothing safe to match on: the Patient gets a deterministic id of its own (a replay of this
        # message updates it, no other message shares it) and the message is counted, so staff can
        # link the duplicate later. A duplicate is recoverable; a merge of two people is not.
        ctx.counts["unmatched_patient"] += 1
        return ctx.builder.add(res, ctx.key(pid))
    return ctx.builder.add(res, f"{match['system']}|{match['value']}", identifier=match)
