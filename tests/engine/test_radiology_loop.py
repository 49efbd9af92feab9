"""The radiology loop against a real Orthanc (DICOMweb + worklist plugin): a FHIR ServiceRequest in,
OMI^O23 to the RIS, a worklist item a modality finds with C-FIND, the study stored with STOW-RS found
by accession and turned into an ImagingStudy at the FHIR server, the report ORU -> DiagnosticReport."""
from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from tests.engine.test_events import events_channel
from tests.fakes.fake_lis import FakeLis
from tests.helpers import EngineHarness
from tests.orthanc import Orthanc

PLAC = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]}
ACSN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}


def imaging_request(placer: str, accession: str, *, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": placer, "status": status, "intent": "order", "priority": "routine",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "363679005"}]}],
        "identifier": [{"type": PLAC, "system": "urn:oid:1.2.360.1.1", "value": placer},
                       {"type": ACSN, "system": "urn:oid:1.2.360.1.3", "value": accession}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2", "display": "CT Chest"}]},
        "occurrenceDateTime": "2026-11-26T09:30:00+07:00",
        "subject": {"reference": "#pat"},
        "contained": [{"resourceType": "Patient", "id": "pat",
                       "identifier": [{"system": "urn:oid:1.2.360.1.2", "value": "MR900"}],
                       "name": [{"family": "Wibowo", "given": ["Sari"]}], "gender": "female",
                       "birthDate": "1975-02-03"}],
    }


def channels(ris_port: int, orthanc: Orthanc, fhir_base: str, events_dir: Path) -> dict[str, str]:
    orders = textwrap.dedent(f"""\
        name: rad-orders
        source:
          fhir_orders: {{port: 0, message_types: {{"363679005": OMI^O23}}, receiving_application: RIS}}
        orders:
          kind: radiology
          sla: {{routine: 24h}}
          study_destination: fhir
        destinations:
          - label: ris
            mllp: {{host: 127.0.0.1, port: {ris_port}, response_timeout: 2s}}
          - label: worklist
            order_by: accession
            worklist: {{directory: {orthanc.worklists}, station_aet: CT01, modalities: {{"24627-2": CT}}}}
          - label: pacs
            order_by: none
            dicomweb: {{url: {orthanc.dicomweb_url}, timeout: 5s, timezone: Asia/Jakarta}}
            retry: {{max_attempts: 1000, initial_delay: 200ms, max_delay: 300ms, max_age: 4s, jitter: false}}
          - label: fhir
            order_by: accession
            fhir_server: {{base_url: {fhir_base}}}
        """)
    reports = textwrap.dedent(f"""\
        name: rad-reports
        source:
          mllp: {{port: 0}}
        filter:
          message_types: [ORU^R01]
        orders:
          kind: radiology
        destinations:
          - label: fhir
            fhir_server: {{base_url: {fhir_base}}}
        """)
    return {"rad-orders.yaml": orders, "rad-reports.yaml": reports,
            "imaging.yaml": events_channel("imaging", ["imaging_study_available", "study_missing"], events_dir)}


def ct_instance(accession: str, study_uid: str, patient_id: str = "MR900") -> Dataset:
    """An 8x8 16-bit CT slice as a modality would store it."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128       # dicomweb-client writes without one otherwise (pydicom 3)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.AccessionNumber = patient_id, "Wibowo^Sari", accession
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.StudyDate, ds.StudyTime, ds.Modality, ds.BodyPartExamined = "20261126", "093512", "CT", "CHEST"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(128)
    return ds


def worklist_find(orthanc: Orthanc, accession: str = "") -> list[Dataset]:
    ae = AE(ae_title="CT01")
    ae.add_requested_context(ModalityWorklistInformationFind)
    query = Dataset()
    query.AccessionNumber, query.PatientName, query.PatientID, query.StudyInstanceUID = accession, "", "", ""
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepStartDate = "", "", ""
    query.ScheduledProcedureStepSequence = [step]
    association = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet)
    assert association.is_established
    found = [identifier for status, identifier in association.send_c_find(query, ModalityWorklistInformationFind)
             if status and status.Status in (0xFF00, 0xFF01)]
    association.release()
    return found


def steps(harness: EngineHarness, placer: str) -> list[str]:
    return [row[0] for row in harness.sql("SELECT e.step FROM order_events e JOIN orders o ON o.id = e.order_id "
                                          "WHERE o.placer_number = :p ORDER BY e.id", p=placer)]


@pytest.fixture
def orthanc(tmp_path):
    with Orthanc(tmp_path / "orthanc") as pacs:
        yield pacs


async def test_order_to_worklist_to_study_to_report(tmp_path, sqlite_url, orthanc, fhir_server):
    harness = EngineHarness(tmp_path, sqlite_url)
    events = tmp_path / "events"
    async with FakeLis() as ris:
        await harness.start(channels(ris.port, orthanc, fhir_server.base_url, events))
        try:
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{harness.port_of('rad-orders')}/fhir/ServiceRequest"
                assert (await client.post(url, json=imaging_request("RAD100", "ACC100"))).status_code == 201
                assert (await client.post(url, json=imaging_request("RAD200", "ACC200"))).status_code == 201
            # The RIS got OMI^O23 with the accession number (OBR-18, IPC-1) and the study's UID (IPC-3).
            await harness.wait_for(lambda: len(ris.received) == 2)
            assert b"OMI^O23" in ris.received[0] and b"|ACC100|" in ris.received[0]
            ipc = ris.received[0].split(b"\rIPC|")[1].split(b"\r")[0].split(b"|")
            # A modality's worklist query finds both scheduled orders (pynetdicom C-FIND against Orthanc).
            await harness.wait_for(lambda: len(list(orthanc.worklists.glob("*.wl"))) == 2)
            items = await asyncio.to_thread(worklist_find, orthanc, "ACC100")
            assert len(items) == 1
            item = items[0]
            assert str(item.PatientName) == "Wibowo^Sari" and item.PatientID == "MR900"
            assert item.ScheduledProcedureStepSequence[0].Modality == "CT"
            assert item.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT01"
            study_uid = item.StudyInstanceUID
            assert ipc[0] == b"ACC100" and ipc[2].decode() == study_uid     # RIS, worklist and PACS agree

            # The modality stores the study (STOW-RS); the pacs destination finds it by accession.
            web = DICOMwebClient(url=orthanc.dicomweb_url)
            await asyncio.to_thread(web.store_instances, [ct_instance("ACC100", study_uid)])
            # (The OMI's own mapping made an ImagingStudy for IPC-3 already; the PACS's answer fills it in.)
            await harness.wait_for(lambda: [s for s in fhir_server.resources("ImagingStudy") if "series" in s],
                                   timeout=15)
            ours = [s for s in fhir_server.resources("ImagingStudy")
                    if s["identifier"][0]["value"] == f"urn:oid:{study_uid}"]
            assert len(ours) == 1
            study = ours[0]
            assert study["identifier"][0] == {"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}
            assert study["series"][0]["modality"]["code"] == "CT"
            assert study["series"][0]["bodySite"]["display"] == "CHEST"
            assert study["numberOfInstances"] == 1 and study["started"] == "2026-11-26T09:35:12+07:00"
            assert study["basedOn"][0]["identifier"]["value"] == "RAD100"
            endpoint = fhir_server.resources("Endpoint")[0]
            assert endpoint["address"] == orthanc.dicomweb_url
            assert endpoint["connectionType"]["code"] == "dicom-wado-rs"
            await harness.wait_for(lambda: list(events.glob("*.json")))
            available = [json.loads(p.read_bytes()) for p in events.glob("*.json")]
            assert [e["type"] for e in available] == ["imaging_study_available"]
            event_study = available[0]["data"]
            assert event_study["resourceType"] == "ImagingStudy" and event_study["endpoint"] == [{"reference": "#endpoint"}]
            assert event_study["contained"][0]["address"] == orthanc.dicomweb_url

            # The report, naming the study, becomes a DiagnosticReport that points at the same ImagingStudy.
            report = ("MSH|^~\\&|RIS|RAD|SIMPUL|RSUD|20261126110000+0700||ORU^R01^ORU_R01|REP1|P|2.5.1\r"
                      "PID|1||MR900^^^RSUD^MR||Wibowo^Sari||19750203|F\r"
                      "ORC|RE|RAD100|RIS100||CM\r"
                      "OBR|1|RAD100|RIS100|24627-2^CT Chest^LN|||20261126093512+0700|||||||||||ACC100|||||||F\r"
                      f"OBX|1|UI|113014^DICOM Study^DCM||{study_uid}||||||F\r"
                      "OBX|2|TX|18782-3^Findings^LN||No acute findings.||||||F\r").encode()
            ack = await ris.send_to(harness.port_of("rad-reports"), report)
            assert b"MSA|AA" in ack
            await harness.wait_for(lambda: [r for r in fhir_server.resources("DiagnosticReport")
                                            if r["status"] == "final"])
            reports = fhir_server.resources("DiagnosticReport")
            assert len(reports) == 1       # the order's placeholder report became the final one
            diagnostic = reports[0]
            assert len(fhir_server.resources("ImagingStudy")) == 2       # one per order, none twice
            linked = diagnostic["imagingStudy"][0]["reference"]
            assert linked == f"ImagingStudy/{study['id']}"
            await harness.wait_for(lambda: "final" in steps(harness, "RAD100"))
            timeline = steps(harness, "RAD100")
            assert timeline[0] == "placed" and timeline[-1] == "final"
            assert {"sent", "worklist", "study_acquired"} <= set(timeline)

            # No study for the second order within max_age: a dead letter and a study_missing alert.
            await harness.wait_for(lambda: "study_missing" in steps(harness, "RAD200"), timeout=15)
            await harness.wait_for(lambda: len(list(events.glob("*.json"))) == 2)
            kinds = sorted(json.loads(p.read_bytes())["type"] for p in events.glob("*.json"))
            assert kinds == ["imaging_study_available", "study_missing"]
            dead = harness.sql("SELECT destination FROM dead_letters")
            assert [row[0] for row in dead] == ["pacs"]

            # Cancelling the order takes it off the worklist.
            async with httpx.AsyncClient() as client:
                cancelled = await client.put(f"{url}/RAD200", json=imaging_request("RAD200", "ACC200", status="revoked"))
            assert cancelled.status_code == 200
            await harness.wait_for(lambda: len(list(orthanc.worklists.glob("*.wl"))) == 1)
            assert await asyncio.to_thread(worklist_find, orthanc, "ACC200") == []
        finally:
            await harness.stop()
