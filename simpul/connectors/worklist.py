"""worklist: keep a DICOM Modality Worklist in step with radiology orders, as `.wl` files an MWL SCP serves.

Features
    Each order (ORM^O01, OMI^O23 or OML^O21; one item per OBR) becomes one worklist item file, named
    by its accession number: a new or changed order (ORC-1 NW, XO, ...) writes it, a cancelled one
    (CA, DC, OC, CR) removes it, so a modality's C-FIND sees exactly the scheduled orders.
    Item: patient (PID-3/5/7/8), accession number, requested procedure (OBR-2, OBR-4), referring
    physician (OBR-16), a Study Instance UID derived from the accession number (the PACS study
    then matches the order), and one scheduled procedure step (modality, station AE title, start
    from OBR-6 / TQ1-7, description).
    Why files for Orthanc's worklist plugin rather than a worklist SCP inside Simpul (pynetdicom):
    the PACS already runs an SCP that modalities know; the plugin re-reads the folder on every
    C-FIND, so a written file is live at once and a removed one gone, with nothing else to
    supervise; and the folder is also what dcmtk's wlmscpfs serves, so either SCP works.
Connection
    directory: the worklist folder of the SCP (Orthanc: `Worklists.Database`).
Options
    station_aet, default_modality, modalities (OBR-4 code -> modality; IPC-5 or an OBR-4 coded in
    DCM wins).
Errors
    A folder that cannot be written (missing, full, read-only): retryable. A message that is not an
    order, or an order without any order number: final.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simpul.connectors._imaging_order import ImagingOrder, read_imaging_orders
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.errors import ConnectorUnavailable

MWL_SOP_CLASS = "1.2.840.10008.5.1.4.31"     # Modality Worklist Information Model - FIND
DICOM_MODALITIES = {"CR", "CT", "DX", "ES", "IO", "MG", "MR", "NM", "OT", "PT", "RF", "US", "XA", "OP"}


class WorklistConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str = Field(description="The worklist folder the SCP reads (Orthanc: Worklists.Database).",
                           examples=["/var/lib/orthanc/worklists"])
    station_aet: str = Field("", max_length=16, description="Scheduled Station AE Title of every item "
                                                            "(empty: any modality may take it).",
                             examples=["CT01"])
    default_modality: str = Field("OT", description="Modality when OBR-4 says none.", examples=["CT"])
    modalities: dict[str, str] = Field(default_factory=dict, description="OBR-4.1 procedure code -> DICOM "
                                       "modality (an OBR-4 coded in DCM is taken as is).",
                                       examples=[{"RAD-CT-HEAD": "CT"}])


class WorklistDestination:
    def __init__(self, config: WorklistConfig) -> None:
        self.config = config
        self.directory = Path(config.directory)

    async def connect(self) -> None:
        """Nothing to open: each send checks the folder (a share may come and go)."""

    async def send(self, outgoing: Outgoing) -> str:
        items = read_imaging_orders(outgoing.payload)
        done = []
        for order in items:
            path = self.directory / f"{order.file_stem}.wl"
            try:
                if not self.directory.is_dir():
                    raise NotADirectoryError("the worklist folder is missing")
                if order.cancelled:
                    path.unlink(missing_ok=True)
                    done.append(f"removed {path.name}")
                else:
                    _write_atomically(path, self._dataset(order))
                    done.append(f"wrote {path.name}")
            except OSError as exc:
                raise ConnectorUnavailable(f"worklist folder not writable ({type(exc).__name__})") from exc
        return "; ".join(done)

    async def close(self) -> None:
        """Nothing held open."""

    def _modality(self, order: ImagingOrder) -> str:
        if order.modality in DICOM_MODALITIES:
            return order.modality
        if order.code_system.upper() == "DCM" and order.code.upper() in DICOM_MODALITIES:
            return order.code.upper()
        return self.config.modalities.get(order.code, self.config.default_modality)

    def _dataset(self, order: ImagingOrder) -> Any:
        # pydicom loads its data dictionary on import (about 0.2 s): only channels with a worklist pay it.
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

        start = order.scheduled or datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        step = Dataset()
        step.Modality = self._modality(order)
        step.ScheduledStationAETitle = self.config.station_aet
        step.ScheduledProcedureStepStartDate = start[:8]
        step.ScheduledProcedureStepStartTime = start[8:14] or "000000"
        step.ScheduledProcedureStepDescription = order.description[:64]
        step.ScheduledProcedureStepID = order.placer[:16]
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"      # UTF-8: Indonesian names are not all ASCII
        ds.AccessionNumber = order.accession[:16]
        ds.PatientName = "^".join(part for part in (order.family, order.given) if part) if order.given else order.family
        ds.PatientID = order.patient_id[:64]
        if order.patient_issuer:
            ds.IssuerOfPatientID = order.patient_issuer[:64]
        ds.PatientBirthDate = order.birth_date
        ds.PatientSex = order.sex if order.sex in ("M", "F", "O") else ""
        ds.ReferringPhysicianName = "^".join(p for p in (order.referring_family, order.referring_given) if p)
        ds.RequestedProcedureID = order.placer[:16]
        ds.RequestedProcedureDescription = order.description[:64]
        ds.StudyInstanceUID = UID(order.study_uid)
        ds.PlacerOrderNumberImagingServiceRequest = order.placer[:64]
        ds.FillerOrderNumberImagingServiceRequest = order.filler[:64]
        ds.ScheduledProcedureStepSequence = [step]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(MWL_SOP_CLASS)
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[order.accession, "worklist"])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        return ds


def _write_atomically(path: Path, dataset: Any) -> None:
    """Write beside the target, then rename: the SCP never reads half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    dataset.save_as(temporary, enforce_file_format=True)
    os.replace(temporary, path)


CONNECTOR = ConnectorSpec(
    name="worklist", destination=WorklistConfig, create_destination=WorklistDestination,
    destination_description="Write each radiology order as a DICOM Modality Worklist item (and remove it "
                            "when the order is cancelled).",
    default_payload="raw")
