"""dicomweb: find the study of each radiology order on the PACS (QIDO-RS) and describe it as a FHIR ImagingStudy.

Features
    A send takes a radiology order (ORM^O01, OMI^O23, OML^O21) and searches the PACS for a study
    with its accession number (QIDO-RS, dicomweb-client). Not there yet: a retryable error, so the
    destination's retry policy is the polling schedule and its `max_age` the time after which the
    missing study becomes a dead letter (and, on a channel with `orders:`, a study_missing alert).
    Found: its series and instances (QIDO-RS) become a FHIR transaction Bundle, returned as the
    send's response: an ImagingStudy (identifier urn:dicom:uid and the accession number, started,
    modality, series with body site and instances, basedOn the ServiceRequest by its placer
    number) and an Endpoint (dicom-wado-rs) to fetch the images from. Order tracking then delivers
    that Bundle to the channel's FHIR destination and raises imaging_study_available.
    Why polling: a PACS notification needs a PACS-side script per product; QIDO-RS by accession
    works against any DICOMweb PACS, and the delivery queue already provides backoff, per-order
    isolation (use `order_by: none`) and the dead letter at the deadline.
Connection
    url: the DICOMweb base (e.g. http://pacs:8042/dicom-web); optional bearer token and headers.
Options
    timeout; wado_url for the Endpoint when clients reach the PACS under another address.
Errors
    No study yet, timeouts, refused connections, 408/429/5xx: retryable. Another 4xx (a query the PACS
    refuses), or a message that is not an order: final.
"""
from __future__ import annotations

import asyncio
import datetime
import hashlib
import zoneinfo
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simpul.config_types import Duration
from simpul.connectors._imaging_order import ImagingOrder, read_imaging_orders
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.errors import ConnectorRejected, ConnectorUnavailable

DCM = "http://dicom.nema.org/resources/ontology/DCM"
RETRYABLE_STATUS = {408, 425, 429}
# DICOM JSON attribute tags (PS3.18 F.2) read from QIDO-RS answers.
STUDY_UID, SERIES_UID, SOP_UID, SOP_CLASS = "0020000D", "0020000E", "00080018", "00080016"
STUDY_DATE, STUDY_TIME, MODALITY, SERIES_NUMBER = "00080020", "00080030", "00080060", "00200011"
INSTANCE_NUMBER, BODY_PART, SERIES_DESCRIPTION, STUDY_DESCRIPTION = "00200013", "00180015", "0008103E", "00081030"
MODALITIES_IN_STUDY, TIMEZONE_OFFSET = "00080061", "00080201"


class DicomwebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="DICOMweb base URL of the PACS (QIDO-RS and WADO-RS).",
                     examples=["http://pacs.hospital.local:8042/dicom-web"])
    timeout: Duration = Field(30.0, description="Per-request timeout.")
    bearer_token: str | None = Field(None, description="Sent as 'Authorization: Bearer ...'; use ${VAR}.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")
    wado_url: str | None = Field(None, description="WADO-RS base written into the Endpoint (default: url).")
    timezone: str = Field("UTC", description="IANA zone of StudyDate/StudyTime when a study carries no "
                                             "TimezoneOffsetFromUTC (FHIR needs the offset).",
                          examples=["Asia/Jakarta"])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value


def _value(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or []
    return values[0] if values else None


def _values(item: dict[str, Any], tag: str) -> list[Any]:
    return list(item.get(tag, {}).get("Value") or [])


def _started(study: dict[str, Any], zone: str) -> str | None:
    """StudyDate + StudyTime as a FHIR dateTime, with the study's TimezoneOffsetFromUTC or `zone`."""
    date = str(_value(study, STUDY_DATE) or "")
    if len(date) != 8 or not date.isdigit():
        return None
    time = str(_value(study, STUDY_TIME) or "").split(".")[0].ljust(6, "0")[:6]
    if not time.isdigit():
        return f"{date[:4]}-{date[4:6]}-{date[6:]}"
    local = datetime.datetime(int(date[:4]), int(date[4:6]), int(date[6:]), int(time[:2]), int(time[2:4]),
                              int(time[4:6]))
    offset = str(_value(study, TIMEZONE_OFFSET) or "")
    if len(offset) == 5 and offset[0] in "+-" and offset[1:].isdigit():
        return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{offset[:3]}:{offset[3:]}"
    return local.replace(tzinfo=zoneinfo.ZoneInfo(zone)).isoformat()


def imaging_study_bundle(order: ImagingOrder, study: dict[str, Any], series: list[dict[str, Any]],
                         instances: list[dict[str, Any]], wado_url: str, zone: str = "UTC") -> dict[str, Any]:
    """The transaction Bundle for one study: Endpoint + ImagingStudy, both conditional on identifiers
    so a retried or replayed delivery updates instead of duplicating."""
    uid = str(_value(study, STUDY_UID))
    endpoint_id = hashlib.blake2b(wado_url.encode(), digest_size=8).hexdigest()
    endpoint = {"resourceType": "Endpoint", "status": "active",
                "identifier": [{"system": "urn:simpul:dicomweb-endpoint", "value": endpoint_id}],
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                                   "code": "dicom-wado-rs"},
                "payloadType": [{"text": "DICOM"}], "payloadMimeType": ["application/dicom"], "address": wado_url}
    by_series: dict[str, list[dict[str, Any]]] = {}
    for instance in instances:
        by_series.setdefault(str(_value(instance, SERIES_UID)), []).append(instance)
    series_out = []
    for item in series:
        series_uid = str(_value(item, SERIES_UID))
        members = by_series.get(series_uid, [])
        entry: dict[str, Any] = {"uid": series_uid, "modality": {"system": DCM, "code": _value(item, MODALITY) or "OT"},
                                 "numberOfInstances": len(members)}
        if _value(item, SERIES_NUMBER) is not None:
            entry["number"] = int(_value(item, SERIES_NUMBER))
        if _value(item, SERIES_DESCRIPTION):
            entry["description"] = str(_value(item, SERIES_DESCRIPTION))
        if _value(item, BODY_PART):
            entry["bodySite"] = {"system": "http://snomed.info/sct", "display": str(_value(item, BODY_PART))}
        entry["instance"] = [{"uid": str(_value(i, SOP_UID)),
                              "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{_value(i, SOP_CLASS)}"},
                              **({"number": int(_value(i, INSTANCE_NUMBER))}
                                 if _value(i, INSTANCE_NUMBER) is not None else {})} for i in members]
        series_out.append(entry)
    modalities = sorted({s["modality"]["code"] for s in series_out} | set(_values(study, MODALITIES_IN_STUDY)))
    imaging: dict[str, Any] = {
        "resourceType": "ImagingStudy", "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"},
                       {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                             "code": "ACSN"}]}, "value": order.accession}],
        "subject": {"type": "Patient", "identifier": {"value": order.patient_id}},
        "modality": [{"system": DCM, "code": code} for code in modalities],
        "numberOfSeries": len(series_out), "numberOfInstances": sum(s["numberOfInstances"] for s in series_out),
        "endpoint": [{"reference": "urn:uuid:endpoint"}], "series": series_out}
    if order.placer:
        imaging["basedOn"] = [{"type": "ServiceRequest", "identifier": {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]},
            "value": order.placer}}]
    started = _started(study, zone)
    if started:
        imaging["started"] = started
    if _value(study, STUDY_DESCRIPTION):
        imaging["description"] = str(_value(study, STUDY_DESCRIPTION))
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:endpoint", "resource": endpoint,
         "request": {"method": "PUT", "url": f"Endpoint?identifier=urn:simpul:dicomweb-endpoint|{endpoint_id}"}},
        {"fullUrl": f"urn:uuid:study-{uid}", "resource": imaging,
         "request": {"method": "PUT", "url": f"ImagingStudy?identifier=urn:dicom:uid|urn:oid:{uid}"}}]}


class DicomwebDestination:
    def __init__(self, config: DicomwebConfig) -> None:
        self.config = config
        self._client: Any = None

    async def connect(self) -> None:
        # dicomweb-client (and requests under it) loads only for channels that talk to a PACS.
        import requests
        from dicomweb_client.api import DICOMwebClient

        session = requests.Session()
        session.headers.update(self.config.headers)
        if self.config.bearer_token:
            session.headers["Authorization"] = f"Bearer {self.config.bearer_token}"
        await self.close()
        self._client = DICOMwebClient(url=self.config.url, session=session, timeout=self.config.timeout)
        # Its own retries (on 503, 504, 429, with waits) would hold a send long past `timeout`;
        # retrying is the destination's retry policy.
        self._client.set_http_retry_params(retry=False)

    async def send(self, outgoing: Outgoing) -> str:
        orders = read_imaging_orders(outgoing.payload)
        if self._client is None:
            await self.connect()
        bundles = []
        for order in orders:
            if order.cancelled:
                continue
            bundles.append(await asyncio.to_thread(self._find, order))
        if not bundles:
            return "cancelled order: no study to look for"
        if len(bundles) == 1:
            return orjson.dumps(bundles[0]).decode()
        return orjson.dumps({"resourceType": "Bundle", "type": "transaction",
                             "entry": [e for b in bundles for e in b["entry"]]}).decode()

    def _find(self, order: ImagingOrder) -> dict[str, Any]:
        # requests comes with dicomweb-client (see connect): loaded only for channels with a PACS.
        import requests

        client = self._client
        try:
            # includefield: PACSs answer QIDO-RS with a minimal attribute set unless asked (PS3.18 8.3.4.3).
            studies = client.search_for_studies(search_filters={"AccessionNumber": order.accession},
                                                fields=["StudyDescription", "TimezoneOffsetFromUTC",
                                                        "ModalitiesInStudy"])
            if not studies:
                raise ConnectorUnavailable("no study with the order's accession number on the PACS yet")
            study = studies[0]
            uid = str(_value(study, STUDY_UID))
            series = client.search_for_series(study_instance_uid=uid, fields=[
                "Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined"])
            instances = client.search_for_instances(study_instance_uid=uid, fields=[
                "SeriesInstanceUID", "SOPClassUID", "InstanceNumber"])
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status in RETRYABLE_STATUS:
                raise ConnectorUnavailable(f"PACS answered {status}") from exc
            raise ConnectorRejected(f"PACS answered {status}") from exc
        except requests.RequestException as exc:
            raise ConnectorUnavailable(f"PACS unreachable ({type(exc).__name__})") from exc
        return imaging_study_bundle(order, study, series, instances, self.config.wado_url or self.config.url,
                                    self.config.timezone)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client._session.close()


CONNECTOR = ConnectorSpec(
    name="dicomweb", destination=DicomwebConfig, create_destination=DicomwebDestination,
    destination_description="Find each radiology order's study on the PACS (QIDO-RS by accession number) and "
                            "answer with its FHIR ImagingStudy.",
    default_payload="raw")
