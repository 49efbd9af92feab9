"""CloudEvents 1.0 in JSON (structured mode): the envelope business events travel in.

    {"specversion": "1.0", "id": "6f1c...", "source": "emr", "type": "lab_order_created",
     "subject": "ServiceRequest/123", "time": "2026-12-02T10:00:00Z",
     "datacontenttype": "application/fhir+json", "data": {"resourceType": "ServiceRequest", ...}}

`data` is a FHIR resource or Bundle (application/fhir+json), any JSON (application/json), or an
HL7v2 message as a string (x-application/hl7-v2+er7; `data_base64` when it is not UTF-8 text).

Not a connector: the RabbitMQ source and destination, the engine's `emit_event` and the mapping
workers share it. The stored `raw` of an event is the envelope exactly as it arrived; the
`messages` row keeps `id` as the control id, `source` as the sending application and `type` as the
message type, so dedup (source + id), search and filters work as they do for HL7v2.
"""
from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from simpul.errors import EventUnreadable

CLOUDEVENTS_JSON = "application/cloudevents+json"
FHIR_JSON = "application/fhir+json"
JSON = "application/json"
HL7_V2 = "x-application/hl7-v2+er7"
SPEC_VERSION = "1.0"
VERSION_ID = "CE1.0"              # what the messages row keeps in version_id for an event

# An event type is also part of a source key (`event:<type>`, 64 characters at most) and an AMQP
# routing key: lower-case words joined by _ . or -.
EVENT_TYPE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,57}$"
_EVENT_TYPE = re.compile(EVENT_TYPE)


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One read event. It also has the header fields a `messages` row keeps (store.rows.HeaderFields)."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    datacontenttype: str
    data: Any                     # dict / list for JSON, str for HL7v2, None when absent

    sending_facility = ""
    receiving_application = ""
    receiving_facility = ""
    version_id = VERSION_ID

    @property
    def sending_application(self) -> str:
        return self.source

    @property
    def message_type(self) -> str:
        return self.type

    @property
    def control_id(self) -> str:
        return self.id

    @property
    def is_fhir(self) -> bool:
        return self.datacontenttype.split(";")[0].strip() == FHIR_JSON

    @property
    def is_hl7v2(self) -> bool:
        return self.datacontenttype.split(";")[0].strip() == HL7_V2


def looks_like_event(raw: bytes) -> bool:
    """A JSON object, not HL7v2 (which starts with MSH, a BOM or a batch header, never '{')."""
    return raw.lstrip()[:1] == b"{"


def valid_type(name: str) -> bool:
    return bool(_EVENT_TYPE.match(name))


def read_event(raw: bytes) -> CloudEvent:
    """Read a structured-mode CloudEvent; EventUnreadable names what is wrong (never a value)."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EventUnreadable("the body is not JSON (a CloudEvents 1.0 JSON event was expected)") from None
    if not isinstance(document, dict):
        raise EventUnreadable("the body is not a JSON object (a CloudEvents 1.0 JSON event was expected)")
    if document.get("specversion") != SPEC_VERSION:
        raise EventUnreadable("specversion: must be \"1.0\"")
    for attribute in ("id", "source", "type"):
        value = document.get(attribute)
        if not isinstance(value, str) or not value:
            raise EventUnreadable(f"{attribute}: required, a non-empty string")
    if len(document["id"]) > 199 or len(document["source"]) > 180:
        raise EventUnreadable("id or source: longer than the store keeps (199 / 180 characters)")
    content_type = document.get("datacontenttype") or JSON
    if not isinstance(content_type, str):
        raise EventUnreadable("datacontenttype: must be a string")
    data = document.get("data")
    if "data_base64" in document:
        try:
            decoded = base64.b64decode(document["data_base64"], validate=True)
        except (ValueError, TypeError):
            raise EventUnreadable("data_base64: not base64") from None
        data = _decode_base64_data(decoded, content_type)
    event = CloudEvent(id=document["id"], source=document["source"], type=document["type"],
                       subject=str(document.get("subject") or ""), time=str(document.get("time") or ""),
                       datacontenttype=content_type, data=data)
    if event.is_fhir and not (isinstance(data, dict) and isinstance(data.get("resourceType"), str)):
        raise EventUnreadable("data: application/fhir+json needs a FHIR resource (an object with resourceType)")
    if event.is_hl7v2 and not (isinstance(data, str) and data.lstrip("\ufeff\r\n ").startswith(("MSH", "FHS", "BHS"))):
        raise EventUnreadable("data: x-application/hl7-v2+er7 needs an HL7v2 message starting with MSH")
    return event


def _decode_base64_data(decoded: bytes, content_type: str) -> Any:
    media = content_type.split(";")[0].strip()
    if media == HL7_V2:
        # v2 text travels base64 when it is not UTF-8 (MSH-18 names its charset); latin-1 keeps every byte.
        return decoded.decode("latin-1")
    if media in (FHIR_JSON, JSON) or media.endswith("+json"):
        try:
            return orjson.loads(decoded)
        except orjson.JSONDecodeError:
            raise EventUnreadable("data_base64: not JSON, as datacontenttype says") from None
    return decoded


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_event(type: str, *, data: Any, source: str = "simpul", subject: str = "", id: str | None = None,
                time: str | None = None, datacontenttype: str | None = None,
                extensions: dict[str, str] | None = None) -> bytes:
    """One structured-mode CloudEvent as JSON bytes. Without `datacontenttype`: application/fhir+json
    for a FHIR resource, x-application/hl7-v2+er7 for v2 text, application/json otherwise."""
    if datacontenttype is None:
        if isinstance(data, dict) and isinstance(data.get("resourceType"), str):
            datacontenttype = FHIR_JSON
        elif isinstance(data, str) and data.startswith("MSH"):
            datacontenttype = HL7_V2
        else:
            datacontenttype = JSON
    document: dict[str, Any] = {
        "specversion": SPEC_VERSION, "id": id or str(uuid.uuid4()), "source": source, "type": type,
        "time": time or now_rfc3339(), "datacontenttype": datacontenttype}
    if subject:
        document["subject"] = subject
    document.update(extensions or {})
    if isinstance(data, bytes):
        document["data_base64"] = base64.b64encode(data).decode("ascii")
    else:
        document["data"] = data
    return orjson.dumps(document)


# ---- business keys of FHIR data (what staff search by; the same columns as HL7v2's) ---------------

@dataclass(frozen=True, slots=True)
class EventKeys:
    patient_id: str = ""
    visit_number: str = ""
    placer_number: str = ""
    filler_number: str = ""
    accession_number: str = ""


def _identifier_of_type(identifiers: Any, code: str) -> str:
    for identifier in identifiers if isinstance(identifiers, list) else []:
        codings = ((identifier.get("type") or {}).get("coding") or []) if isinstance(identifier, dict) else []
        if any(isinstance(c, dict) and c.get("code") == code for c in codings):
            return str(identifier.get("value") or "")
    return ""


def _first_value(identifiers: Any) -> str:
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if isinstance(identifier, dict) and identifier.get("value"):
            return str(identifier["value"])
    return ""


def _reference_key(reference: Any) -> str:
    """A Reference's identifier value, else its literal reference (Patient/123)."""
    if not isinstance(reference, dict):
        return ""
    identifier = reference.get("identifier")
    if isinstance(identifier, dict) and identifier.get("value"):
        return str(identifier["value"])
    return str(reference.get("reference") or "")


def event_keys(event: CloudEvent) -> EventKeys:
    """Patient, visit, placer, filler and accession numbers of FHIR data (empty for other data)."""
    if not event.is_fhir or not isinstance(event.data, dict):
        return EventKeys()
    resources: list[dict[str, Any]] = [event.data]
    if event.data.get("resourceType") == "Bundle":
        resources = [entry["resource"] for entry in event.data.get("entry") or []
                     if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)]
    keys: dict[str, str] = {}
    for resource in resources:
        kind = resource.get("resourceType")
        identifiers = resource.get("identifier")
        if kind == "Patient":
            keys.setdefault("patient_id", _identifier_of_type(identifiers, "MR") or _first_value(identifiers))
            continue
        if kind == "Encounter":
            keys.setdefault("visit_number", _identifier_of_type(identifiers, "VN") or _first_value(identifiers))
        elif kind != "Specimen":     # a specimen's PLAC/FILL numbers are the specimen's, not the order's
            for column, code in (("placer_number", "PLAC"), ("filler_number", "FILL"),
                                 ("accession_number", "ACSN")):
                if value := _identifier_of_type(identifiers, code):
                    keys.setdefault(column, value)
        if subject := _reference_key(resource.get("subject") or resource.get("patient")):
            keys.setdefault("subject", subject)
    if not keys.get("patient_id") and keys.get("subject"):
        keys["patient_id"] = keys["subject"]
    keys.pop("subject", None)
    return EventKeys(**{name: value[:250] for name, value in keys.items() if value})


# ---- what a broker source's ingest answers (engine/event_ingest.py) ---------------------------

def answer(outcome: str, **detail: str) -> bytes:
    """The ingest's answer to an event: {"outcome": "stored" | "duplicate" | "rejected", ...}."""
    return orjson.dumps({"outcome": outcome, **detail})


def outcome_of(reply: bytes | None) -> str:
    """What a broker source does with the ingest's answer: stored | duplicate | rejected.

    For an HL7v2 body the answer is its ACK: AR/CR, and AE/CE (an undecodable charset, stored as
    rejected), are `rejected`; a failed commit never gets here (the ingest raises instead). No
    ACK at all (MSH-15 NE) means stored."""
    if reply is None:
        return "stored"
    if looks_like_event(reply):
        try:
            return str(orjson.loads(reply).get("outcome", "stored"))
        except (orjson.JSONDecodeError, AttributeError):
            return "stored"
    for line in reply.split(b"\r"):
        if line.startswith(b"MSA"):
            return "rejected" if line[4:6] in (b"AR", b"CR", b"AE", b"CE") else "stored"
    return "stored"
