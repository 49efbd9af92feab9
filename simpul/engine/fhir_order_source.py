"""The `fhir_orders` source: POST/PUT [base]/ServiceRequest -> one HL7v2 order message -> Ingest.

The request is turned into ORM^O01, OML^O21 or OMI^O23 by the FHIR -> v2 writer (simpul/mappings/fhir_to_v2)
and handed to the same Ingest as MLLP (commit, then answer), so what follows is the ordinary
pipeline: channel filter, order tracking, per-destination queue to the LIS or RIS.

Why the conversion happens here and not in a channel mapping: the store and every stage after it
hold HL7v2 (dedup, business keys, dead-letter edit and replay all read MSH); converting at the door
keeps one kind of message behind it. A PUT is a change: an active ServiceRequest goes out as ORC-1
XO, a revoked one as CA. MSH-10 is a hash of the request and MSH-7 its authoredOn, so a client that
resends after a lost answer sends the same bytes and gets the first answer back (the ingest's dedup)
instead of placing the order twice. Without authoredOn, MSH-7 is the time of the first copy, kept
for the last REMEMBERED requests of this process.
"""
from __future__ import annotations

import asyncio
import copy
import datetime
import hashlib
import logging
from typing import Any

import orjson

from simpul.connectors.fhir_orders import FhirOrderSource
from simpul.engine.http_source import HttpSourceServer, respond
from simpul.engine.ingest import Ingest
from simpul.errors import AckUnreadable, MappingError
from simpul.mappings.fhir_to_v2 import build_oml_o21, build_omi_o23, build_orm_o01
from simpul.mappings.fhir_to_v2.datatypes import dtm
from simpul.mllp.ack import read_ack
from simpul.v2 import MessageHeader

log = logging.getLogger("simpul.fhir_orders")

FHIR_JSON = "application/fhir+json"
V2_TABLE_0119 = "http://terminology.hl7.org/CodeSystem/v2-0119"
BUSINESS_EVENT = "http://hl7.org/fhir/StructureDefinition/event-businessEvent"
REMEMBERED = 10_000
PLACER_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]}


def outcome(status: int, code: str, diagnostics: str, expression: str | None = None) -> tuple[int, bytes]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return status, orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})


def service_request_of(body: dict[str, Any]) -> dict[str, Any] | None:
    if body.get("resourceType") == "ServiceRequest":
        return body
    if body.get("resourceType") == "Bundle":
        for entry in body.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "ServiceRequest":
                return resource
    return None


def _categories(request: dict[str, Any]) -> list[str]:
    return [str(coding.get("code")) for category in request.get("category") or [] if isinstance(category, dict)
            for coding in category.get("coding") or [] if isinstance(coding, dict) and coding.get("code")]


def order_message(settings: FhirOrderSource, body: dict[str, Any], *, change: bool,
                  sent_at: dict[str, str] | None = None) -> bytes:
    """The HL7v2 message for one request (MappingError names the FHIR element when it cannot be written)."""
    body = copy.deepcopy(body)
    request = service_request_of(body)
    if request is None:
        raise MappingError("the body holds no ServiceRequest")
    if not request.get("identifier") and isinstance(request.get("id"), str):
        # Without a placer identifier the resource id is the order's placer number (ORC-2).
        request["identifier"] = [{"type": PLACER_TYPE, "value": request["id"]}]
    if change and request.get("status") == "active":
        request.setdefault("extension", []).append(
            {"url": BUSINESS_EVENT, "valueCodeableConcept": {"coding": [{"system": V2_TABLE_0119, "code": "XO"}]}})
    kind = next((settings.message_types[c] for c in _categories(request) if c in settings.message_types),
                settings.message_type)
    digest = hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + (b"PUT" if change else b"POST"),
                             digest_size=10).hexdigest()
    if request.get("authoredOn"):
        when = dtm(str(request["authoredOn"]), "ServiceRequest.authoredOn", segment="MSH", field=7)
    elif sent_at is not None:
        when = sent_at.setdefault(digest, datetime.datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z"))
        while len(sent_at) > REMEMBERED:
            del sent_at[next(iter(sent_at))]
    else:
        when = ""
    header = MessageHeader(message_datetime=when, sending_application=settings.sending_application,
                           sending_facility=settings.sending_facility,
                           receiving_application=settings.receiving_application,
                           receiving_facility=settings.receiving_facility, control_id=digest)
    build = {"ORM^O01": build_orm_o01, "OMI^O23": build_omi_o23}.get(kind, build_oml_o21)
    return build(body, header).encode("utf-8")


class FhirOrderServer(HttpSourceServer):
    """One fhir_orders source: its own HTTP server (host, port), one Ingest."""

    def __init__(self, settings: FhirOrderSource, ingest: Ingest) -> None:
        super().__init__(settings.host, settings.port)
        self.settings = settings
        self.ingest = ingest
        self.collection = settings.base_path.rstrip("/") + "/ServiceRequest"
        self.sent_at: dict[str, str] = {}     # request hash -> MSH-7 of its first copy (see module docstring)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status, body, headers = await self._answer(scope, receive)
        await respond(send, status, body, FHIR_JSON, headers)

    async def _answer(self, scope: dict[str, Any], receive: Any) -> tuple[int, bytes, dict[str, str]]:
        path, method = scope["path"].rstrip("/"), scope["method"]
        if path == self.collection:
            if method != "POST":
                return (*outcome(405, "not-supported", "POST a ServiceRequest here"), {"allow": "POST"})
            change = False
        elif path.startswith(self.collection + "/") and path.count("/") == self.collection.count("/") + 1:
            if method != "PUT":
                return (*outcome(405, "not-supported", "PUT the changed ServiceRequest here"), {"allow": "PUT"})
            change = True
        else:
            return (*outcome(404, "not-found", f"no FHIR endpoint here; orders go to {self.collection}"), {})
        raw = bytearray()
        while True:
            event = await receive()
            raw += event.get("body", b"")
            if len(raw) > self.settings.max_bytes:
                return (*outcome(413, "too-costly", f"the body exceeds {self.settings.max_bytes} bytes"), {})
            if not event.get("more_body"):
                break
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return (*outcome(400, "invalid", "the body is not JSON"), {})
        if not isinstance(body, dict) or service_request_of(body) is None:
            return (*outcome(400, "invalid", "the body must be a ServiceRequest or a Bundle holding one"), {})
        request = service_request_of(body)
        assert request is not None
        if change and str(request.get("id", "")) != path.rsplit("/", 1)[1]:
            return (*outcome(400, "invalid", "ServiceRequest.id must match the id in the URL", "ServiceRequest.id"), {})
        try:
            # The writer's structure check (hl7apy) takes milliseconds: off the loop that answers MLLP.
            message = await asyncio.to_thread(order_message, self.settings, body, change=change,
                                              sent_at=self.sent_at)
        except MappingError as exc:
            return (*outcome(422, "processing", str(exc)), {})
        ack = await self.ingest.handle(message)
        code = _ack_code(ack)
        if code in ("AA", "CA", ""):
            location = f"{self.collection}/{request.get('id', '')}" if request.get("id") else ""
            return 200 if change else 201, orjson.dumps(request), ({"location": location} if location else {})
        if code in ("AE", "CE"):
            return (*outcome(503, "transient", "the order could not be stored; send it again"), {})
        return (*outcome(400, "invalid", "the order message was refused"), {})


def _ack_code(ack: bytes | None) -> str:
    if ack is None:
        return ""
    try:
        return read_ack(ack)[0]
    except AckUnreadable:
        return ""
