"""HL7 v2 datatypes -> FHIR datatypes (HL7 V2-to-FHIR IG datatype maps, §1.5 of specs/v2-to-fhir.md).

Each function takes the map context and one raw repetition and returns a plain dict, or None when
nothing usable is there. Raw text is split into components here and decoded leaf by leaf, so an
escaped delimiter never splits a value.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.v2 import Delimiters as Encoding

V2 = "http://terminology.hl7.org/CodeSystem/v2-"

# Components each datatype map below reads (1-based). report.py uses them to count valued components
# no map reads (PID-3.6, the assigning facility, is one); keep them in step with the functions.
READ_COMPONENTS = {
    "CX": {1, 4, 5, 7, 8},                       # cx()
    "XPN": {1, 2, 3, 4, 5, 6, 7, 10, 12, 13},    # xpn()
    "XAD": {1, 2, 3, 4, 5, 6, 7, 9},             # xad() (+ PID-12 county)
    "XTN": {1, 2, 3, 4, 5, 6, 7, 8, 12},         # xtn()
    "XCN": {1, 2, 3, 4, 5, 6, 9, 13, 21},        # practitioner()
}

_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?\s*([+-]\d{4}|Z)?$")


def comps(enc: Encoding, raw: str) -> list[str]:
    return raw.split(enc.component)


def leaf(enc: Encoding, parts: list[str], n: int, sub: int = 1) -> str:
    """Decoded text of component n (1-based), subcomponent `sub`; stripped; "" if absent."""
    # Hot path (~300 calls per ADT message): empty and escape-free values skip decode().
    if n > len(parts):
        return ""
    raw = parts[n - 1]
    if not raw:
        return raw
    if enc.subcomponent in raw:
        subs = raw.split(enc.subcomponent)
        raw = subs[sub - 1] if sub <= len(subs) else ""
        if not raw:
            return raw
    elif sub > 1:
        return ""
    if enc.escape in raw or raw == '""':
        return enc.decode(raw).strip()
    return raw.strip()


# --- DTM / TS -----------------------------------------------------------------------------------

def dtm(ctx: MapContext, text: str) -> str | None:
    """v2 DTM (or TS.1) -> FHIR dateTime, keeping the precision the sender gave.

    FHIR needs an offset once a time is present: the sender's offset is kept; without one the
    channel's (or engine's) `default_timezone` is applied, else MSH-7's offset; with none of them
    the value is cut to its date and counted as `time_without_zone`.
    """
    if not text:
        return None
    # Pure function of (text, timezone); one message repeats the same stamps (OBX-14, OBR-7).
    out = _dtm(text, ctx.timezone)
    if ctx.timezone is None and out is not None and "T" not in out and len(out) == 10 and len(text.strip()) > 8:
        ctx.counts["time_without_zone"] += 1
    return out


def offset_of(text: str) -> str | None:
    """The UTC offset a v2 DTM carries, as FHIR writes it (+07:00, Z), or None."""
    m = _DTM.match(text.strip()) if text else None
    tz = m.group(8) if m else None
    if tz is None:
        return None
    if tz == "Z":
        return "Z"
    if int(tz[1:3]) > 14 or int(tz[3:5]) > 59:
        return None
    return f"{tz[:3]}:{tz[3:]}"


@lru_cache(maxsize=4096)
def _dtm(text: str, default_timezone: str | None) -> str | None:
    m = _DTM.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    if year == "0000":
        return None
    if month and not 1 <= int(month) <= 12 or day and not 1 <= int(day) <= 31:
        return None
    out = year
    if month:
        out += f"-{month}"
        if day:
            out += f"-{day}"
    if not (month and day and hour):
        return out
    if int(hour) > 23 or (minute and int(minute) > 59) or (second and int(second) > 60):
        return out
    if tz is None:
        tz_text = default_timezone
        if tz_text is None:
            return out
    elif tz == "Z":
        tz_text = "Z"
    else:
        if int(tz[1:3]) > 14 or int(tz[3:5]) > 59:
            return out
        tz_text = f"{tz[:3]}:{tz[3:]}"
    out += f"T{hour}:{minute or '00'}:{second or '00'}{frac or ''}{tz_text}"
    return out


def date_only(text: str) -> str | None:
    """v2 DT/DTM -> FHIR date (birthDate and other date-only elements)."""
    m = _DTM.match(text.strip()) if text else None
    if not m:
        return None
    year, month, day = m.group(1), m.group(2), m.group(3)
    if year == "0000":
        return None
    if month and not 1 <= int(month) <= 12 or day and not 1 <= int(day) <= 31:
        return None
    return year + (f"-{month}" if month else "") + (f"-{day}" if month and day else "")


def ts_field(ctx: MapContext, raw: str) -> str | None:
    """TS is DTM^precision: only TS.1 is read."""
    return dtm(ctx, leaf(ctx.enc, comps(ctx.enc, raw), 1)) if raw else None


# --- HD, CX, EI ---------------------------------------------------------------------------------

def hd_system(ctx: MapContext, namespace: str, universal_id: str, universal_type: str) -> str | None:
    """Assigning authority (HD) -> Identifier.system: channel overrides, built-in table, OID/UUID, else urn:id:."""
    for name in (namespace, universal_id):
        if name:
            hit = ctx.identifier_system(name)
            if hit:
                return hit
    if universal_id:
        kind = universal_type.upper()
        if kind in ("ISO", "") and re.fullmatch(r"[0-2](\.\d+)+", universal_id):
            return "urn:oid:" + universal_id
        if kind in ("UUID", "GUID"):
            return "urn:uuid:" + universal_id.lower()
        if universal_id.startswith(("http://", "https://", "urn:")):
            return universal_id
    if namespace:
        if namespace.startswith(("http://", "https://", "urn:")):
            return namespace
        # No registry entry: a stable local URI (the LinuxForHealth/ReportStream convention).
        return "urn:id:" + quote(namespace, safe="._-")
    return None


def cx(ctx: MapContext, raw: str, *, default_type: str = "") -> dict[str, Any] | None:
    """CX -> Identifier: CX.1 value, CX.4 system, CX.5 type (v2-0203), CX.7/8 period."""
    enc = ctx.enc
    p = comps(enc, raw)
    value = leaf(enc, p, 1)
    if not value:
        return None
    id_type = leaf(enc, p, 5) or default_type
    if id_type:
        id_type = ID_TYPE_ALIASES.get(id_type.upper(), id_type)
        vocab.lookup("0203", id_type, ctx.unmapped)  # counted when not a 0203 code; kept as text then
    system = hd_system(ctx, leaf(enc, p, 4, 1), leaf(enc, p, 4, 2), leaf(enc, p, 4, 3))
    ident = _identifier(id_type, system, value)
    start, end = dtm(ctx, leaf(enc, p, 7)), dtm(ctx, leaf(enc, p, 8))
    if start or end:
        ident["period"] = _period(start, end)
    return ident


def ei(ctx: MapContext, raw: str, type_code: str = "") -> dict[str, Any] | None:
    """EI -> Identifier: EI.1 value, EI.2/EI.3/EI.4 as HD for the system; `type_code` from v2-0203."""
    enc = ctx.enc
    p = comps(enc, raw)
    value = leaf(enc, p, 1)
    if not value:
        return None
    return _identifier(type_code, hd_system(ctx, leaf(enc, p, 2), leaf(enc, p, 3), leaf(enc, p, 4)), value)


# Identifier type words vendors send in CX-5 for a 0203 code (Epic and others write MEDREC for MR).
_NATIONAL_TYPE = re.compile(r"NN[A-Z]{3}")  # v2-0203 NNxxx: national person id of country xxx (NNIDN)
ID_TYPE_ALIASES = {"MEDREC": "MR", "MRN": "MR", "MED REC": "MR", "SSN": "SS"}


def _identifier(type_code: str, system: str | None, value: str) -> dict[str, Any]:
    """Identifier with type and system only when given, in the order CX, EI and XCN share. A type that
    is not a v2-0203 code (EPI, local words) is kept as text: v2-0203 does not define it."""
    ident: dict[str, Any] = {}
    if type_code:
        if type_code in vocab.table("0203").entries or _NATIONAL_TYPE.fullmatch(type_code):
            ident["type"] = {"coding": [{"system": V2 + "0203", "code": type_code}]}
        else:
            ident["type"] = {"text": type_code}
    if system:
        ident["system"] = system
    ident["value"] = value
    return ident


def _period(start: str | None, end: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if start:
        out["start"] = start
    if end:
        out["end"] = end
    return out


# --- CWE / CE / CNE -----------------------------------------------------------------------------

_LOCAL_SYSTEM = re.compile(r"L|LOCAL|LCL|99[A-Z0-9]{1,3}")


def coding_system(ctx: MapContext, name: str) -> str | None:
    """CWE.3 coding system name -> URI: channel override, built-in table, v2 table (HL7nnnn), urn:id:."""
    if not name:
        return None
    hit = ctx.code_system(name)
    if hit:
        return hit
    upper = name.upper()
    if upper.startswith("HL7") and upper[3:].isdigit():
        return V2 + upper[3:].zfill(4)
    if name.startswith(("http://", "https://", "urn:")):
        return name
    ctx.unmapped[f"coding-system:{name}"] += 1
    if _LOCAL_SYSTEM.fullmatch(upper):
        # Table 0396 "L" and "99zzz" mean "this sender's own codes": two senders' local code 123
        # are different things, so the system is scoped by the sender (MSH-4, else MSH-3).
        msh = ctx.msg.msh
        sender = msh.text(4) or msh.text(3) or "unknown-sender"
        return f"urn:id:local:{quote(sender, safe='._-')}:{quote(name, safe='._-')}"
    return "urn:id:" + quote(name, safe="._-")


def leaves(enc: Encoding, raw: str, width: int) -> list[str]:
    """`[leaf(enc, comps(enc, raw), n) for n in 1..]`, padded with "" to at least `width` items: one
    pass instead of one call per component (CWE and XCN read a dozen components, most of them empty)."""
    parts = raw.split(enc.component)
    if enc.subcomponent in raw or enc.escape in raw or '""' in raw:
        out = [leaf(enc, parts, n) for n in range(1, len(parts) + 1)]
    else:
        out = [x.strip() for x in parts]
    if len(out) < width:
        out += [""] * (width - len(out))
    return out


_CWE_TRIPLETS = ((0, 1, 2, 6), (3, 4, 5, 7), (9, 10, 11, -1))  # 0-based (code, text, system, version)


def cwe(ctx: MapContext, raw: str) -> dict[str, Any] | None:
    """CWE/CE/CNE -> CodeableConcept: triplets (1,2,3), (4,5,6), (10,11,12); CWE.9 (or the first display) -> text."""
    p = leaves(ctx.enc, raw, 12)
    if not p[0] and ctx.enc.subcomponent in raw:
        # CWE.1 sent only in its subcomponents ("&GDT", Epic radiology OBX-3): the first valued one is the code.
        first = raw.split(ctx.enc.component, 1)[0].split(ctx.enc.subcomponent)
        p[0] = next((ctx.enc.decode(x).strip() for x in first if x.strip()), "")
    codings: list[dict[str, Any]] = []
    for code_i, text_i, sys_i, ver_i in _CWE_TRIPLETS:
        code, display = p[code_i], p[text_i]
        if not code and not display:
            continue
        coding: dict[str, Any] = {}
        system = coding_system(ctx, p[sys_i])
        if system:
            coding["system"] = system
        if ver_i >= 0:
            version = p[ver_i]
            if version:
                coding["version"] = version
        if code:
            coding["code"] = code
        if display:
            coding["display"] = display
        if code or system:
            codings.append(coding)
    text = p[8] or (p[1] if not codings else "")
    if not codings and not text:
        return None
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = codings
    if text:
        out["text"] = text
    return out


def coded(ctx: MapContext, table_name: str, code: str, display: str = "") -> dict[str, Any] | None:
    """CodeableConcept for a v2-table code: the mapped target coding, or the original v2 coding when unmapped."""
    if not code:
        return None
    t = vocab.table(table_name)
    hit = vocab.lookup(table_name, code, ctx.unmapped)
    if hit is not None and t.target_system:
        coding = {"system": t.code_systems.get(hit, t.target_system), "code": hit}
    else:
        coding = vocab.original_coding(table_name, code)
    if display:
        coding["display"] = display
    return {"coding": [coding]}


# --- XPN, XAD, XTN ------------------------------------------------------------------------------

def xpn(ctx: MapContext, raw: str) -> dict[str, Any] | None:
    """XPN -> HumanName: family (XPN.1.1), given (XPN.2, XPN.3), suffix (4, 6), prefix (5), use (7, table 0200)."""
    enc = ctx.enc
    p = comps(enc, raw)
    v = leaves(enc, raw, 13)
    name: dict[str, Any] = {}
    use_code = v[6]
    if use_code:
        use = vocab.lookup("0200", use_code, ctx.unmapped)
        if use:
            name["use"] = use
    family = v[0]
    given = [g for g in (v[1], v[2]) if g]
    _human_name(name, family, given, v[4], [s for s in (v[3], v[5]) if s])
    if len(p) < 10:  # no XPN.10 validity range, XPN.12/13 dates
        start = end = None
    else:
        start, end = dtm(ctx, v[9] or v[11]), dtm(ctx, leaf(enc, p, 10, 2) or v[12])
    if start or end:
        name["period"] = _period(start, end)
    if not (family or given):
        return None
    return name


def _human_name(name: dict[str, Any], family: str, given: list[str], prefix: str,
                suffix: list[str]) -> dict[str, Any]:
    """Add family, given, prefix and suffix to a HumanName, each only when valued (XPN and XCN share it)."""
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = suffix
    return name


def xad(ctx: MapContext, raw: str) -> dict[str, Any] | None:
    """XAD -> Address: line (XAD.1.1, XAD.2), city 3, state 4, postalCode 5, country 6, use/type 7, district 9."""
    v = leaves(ctx.enc, raw, 9)
    addr: dict[str, Any] = {}
    kind = v[6]
    if kind:
        use = vocab.lookup("0190", kind, ctx.unmapped)
        if use:
            addr["use"] = use
        a_type = vocab.table("0190-type").entries.get(kind)
        if a_type:
            addr["type"] = a_type
    lines = [x for x in (v[0], v[1]) if x]
    if lines:
        addr["line"] = lines
    for n, key in ((3, "city"), (9, "district"), (4, "state"), (5, "postalCode"), (6, "country")):
        value = v[n - 1]
        if value:
            addr[key] = value
    if len(addr) == ("use" in addr) + ("type" in addr):
        return None
    return addr


def xtn(ctx: MapContext, raw: str, default_use: str = "") -> dict[str, Any] | None:
    """XTN -> ContactPoint: XTN.2 use (0201), XTN.3 system (0202); value = XTN.4 for e-mail,
    else XTN.12 (unformatted), else +XTN.5 XTN.6 XTN.7 xXTN.8, else XTN.1 (pre-2.3 form)."""
    p = leaves(ctx.enc, raw, 12)
    use_code, equip = p[1], p[2]
    cp: dict[str, Any] = {}
    system = vocab.lookup("0202", equip, ctx.unmapped) if equip else None
    email = p[3]
    if system == "email" or (email and "@" in email and not system):
        system, value = "email", email
    else:
        value = p[11]
        if not value:
            parts = [p[4], p[5], p[6]]
            if any(parts):
                value = " ".join(x for x in (("+" + parts[0]) if parts[0] else "", parts[1], parts[2]) if x)
                ext = p[7]
                if ext:
                    value += f" x{ext}"
        if not value:
            value = p[0]
    if not value:
        return None
    cp["system"] = system or ("email" if "@" in value else "phone")
    cp["value"] = value
    use = vocab.lookup("0201", use_code, ctx.unmapped) if use_code else None
    if equip == "CP":
        use = "mobile"
    if use or default_use:
        cp["use"] = use or default_use
    return cp


# --- CQ, PL, XCN, XON ---------------------------------------------------------------------------

def number(text: str) -> float | int | None:
    t = text.strip()
    if not t:
        return None
    try:
        if re.fullmatch(r"[+-]?\d+", t):
            return int(t)
        value = float(t)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def units(ctx: MapContext, raw: str) -> dict[str, Any]:
    """CWE units (OBX-6, CQ.2) -> Quantity unit/system/code; UCUM only when the sender says UCUM."""
    if not raw:
        return {}
    enc = ctx.enc
    p = comps(enc, raw)
    code, text, system_name = leaf(enc, p, 1), leaf(enc, p, 2), leaf(enc, p, 3)
    out: dict[str, Any] = {}
    if text or code:
        out["unit"] = text or code
    system = coding_system(ctx, system_name) if system_name else None
    if code and system:
        out["system"] = system
        out["code"] = code
    return out


def cq(ctx: MapContext, raw: str) -> dict[str, Any] | None:
    """CQ (quantity^units) -> Quantity."""
    enc = ctx.enc
    p = comps(enc, raw)
    value = number(leaf(enc, p, 1))
    if value is None:
        return None
    q: dict[str, Any] = {"value": value}
    if len(p) > 1 and p[1]:
        q.update(units(ctx, p[1].replace(enc.subcomponent, enc.component)))
    return q


def practitioner(ctx: MapContext, raw: str) -> str | None:
    """XCN -> Practitioner (conditional create on XCN.1 + XCN.9), returns its reference."""
    enc = ctx.enc
    p = comps(enc, raw)
    v = leaves(enc, raw, 21)
    ident_value = v[0]
    family, given = v[1], [g for g in (v[2], v[3]) if g]
    if not ident_value and not family and not given:
        return None
    res: dict[str, Any] = {"resourceType": "Practitioner"}
    identifier = None
    if ident_value:
        system = hd_system(ctx, v[8], leaf(enc, p, 9, 2), leaf(enc, p, 9, 3)) if len(p) >= 9 else None
        identifier = _identifier(v[12], system, ident_value)  # XCN.13 identifier type
        res["identifier"] = [identifier]
    if family or given:
        # XCN.5 suffix, XCN.6 prefix, XCN.21 professional suffix
        res["name"] = [_human_name({}, family, given, v[5], [s for s in (v[4], v[20]) if s])]
    key = f"{identifier.get('system', '')}|{ident_value}" if identifier else f"name|{family}|{'|'.join(given)}"
    return ctx.builder.add(res, key, identifier=identifier, create_only=True)


def organization(ctx: MapContext, name: str, ident_value: str = "", system: str | None = None) -> str | None:
    """An Organization by name and/or identifier (MSH-4 HD, XON), conditional create."""
    if not name and not ident_value:
        return None
    res: dict[str, Any] = {"resourceType": "Organization"}
    identifier = None
    if ident_value:
        identifier = {"system": system, "value": ident_value} if system else {"value": ident_value}
        res["identifier"] = [identifier]
    if name:
        res["name"] = name
    key = f"{system or ''}|{ident_value}|{name if not ident_value else ''}"
    return ctx.builder.add(res, key, identifier=identifier, create_only=True)


def xon(ctx: MapContext, raw: str) -> str | None:
    """XON -> Organization: XON.1 name, XON.10 (or XON.3) identifier, XON.6 assigning authority."""
    enc = ctx.enc
    p = comps(enc, raw)
    ident_value = leaf(enc, p, 10) or leaf(enc, p, 3)
    system = hd_system(ctx, leaf(enc, p, 6, 1), leaf(enc, p, 6, 2), leaf(enc, p, 6, 3)) if ident_value else None
    return organization(ctx, leaf(enc, p, 1), ident_value, system)


def location(ctx: MapContext, raw: str) -> str | None:
    """PL -> Location (point of care ^ room ^ bed ^ facility), conditional create on the full PL text."""
    enc = ctx.enc
    p = comps(enc, raw)
    parts = [leaf(enc, p, n) for n in (1, 2, 3)]
    facility = leaf(enc, p, 4)
    building, floor = leaf(enc, p, 7), leaf(enc, p, 8)
    text = "/".join(x for x in (facility, building, floor, *parts) if x)
    if not text:
        return None
    res: dict[str, Any] = {"resourceType": "Location", "name": " ".join(x for x in parts if x) or text,
                           "identifier": [{"system": "urn:simpul:v2:pl", "value": text}]}
    desc = leaf(enc, p, 9)
    if desc:
        res["description"] = desc
    physical_type = "bd" if parts[2] else "ro" if parts[1] else ""  # PL.3 bed, else PL.2 room
    if physical_type:
        res["physicalType"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                                           "code": physical_type}]}
    return ctx.builder.add(res, text, identifier=res["identifier"][0], create_only=True)
