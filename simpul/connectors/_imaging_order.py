"""What the imaging connectors (worklist, dicomweb) read from an HL7v2 radiology order (ORM^O01,
OMI^O23, OML^O21): one `ImagingOrder` per ORC/OBR group. Not a connector (the leading underscore
keeps it out of the registry).

Accession number: IPC-1 (OMI), else OBR-18 (the RIS convention the fhir_orders writer follows),
else the filler number (ORC-3/OBR-3), else the placer number. DICOM gives it 16 characters (SH).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from simpul.errors import ConnectorRejected, MessageError
from simpul.v2 import Segment, parse_message, read_message, study_uid_for_accession

CANCEL_CONTROLS = {"CA", "DC", "OC", "CR"}


@dataclass
class ImagingOrder:
    control: str                 # ORC-1
    placer: str
    filler: str
    accession: str
    code: str                    # OBR-4.1
    description: str             # OBR-4.2
    code_system: str             # OBR-4.3
    scheduled: str               # OBR-6 / TQ1-7 / ORC-7.4 (DTM)
    patient_id: str              # PID-3.1
    patient_issuer: str          # PID-3.4.1
    family: str                  # PID-5.1
    given: str                   # PID-5.2
    birth_date: str              # PID-7
    sex: str                     # PID-8
    referring_family: str        # OBR-16.2
    referring_given: str         # OBR-16.3
    modality: str = ""           # IPC-5.1 (OMI)
    given_study_uid: str = ""    # IPC-3 (OMI)

    @property
    def cancelled(self) -> bool:
        return self.control in CANCEL_CONTROLS

    @property
    def file_stem(self) -> str:
        """A file name safe on every file system, unique per accession number."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.accession)[:40]
        return f"{safe}-{hashlib.blake2b(self.accession.encode(), digest_size=4).hexdigest()}"

    @property
    def study_uid(self) -> str:
        """The Study Instance UID the worklist hands the modality: IPC-3 of an OMI, else derived from
        the accession number the same way the OMI writer does, so a changed order keeps it."""
        return self.given_study_uid or study_uid_for_accession(self.accession)


def read_imaging_orders(payload: bytes) -> list[ImagingOrder]:
    """The orders of one message; ConnectorRejected (final) when it is not an order message."""
    try:
        message = parse_message(read_message(payload, fallback_charset="latin-1").text)
    except MessageError as exc:
        raise ConnectorRejected(f"not a readable HL7v2 message ({type(exc).__name__})") from exc
    if message.message_code not in ("ORM", "OMI", "OML"):
        raise ConnectorRejected(f"{message.message_code or 'a message'} is not an order message (ORM, OMI, OML)")
    pid = message.one("PID")
    found: list[ImagingOrder] = []
    orc: Segment | None = None
    tq1: Segment | None = None
    for segment in message:
        if segment.name == "ORC":
            orc, tq1 = segment, None
        elif segment.name == "TQ1":
            tq1 = segment
        elif segment.name == "OBR":
            found.append(_order(pid, orc, tq1, segment))
        elif segment.name == "IPC" and found:
            found[-1].accession = segment.text(1) or found[-1].accession
            found[-1].given_study_uid = segment.text(3) or found[-1].given_study_uid
            found[-1].modality = segment.text(5).upper() or found[-1].modality
    if not found:
        raise ConnectorRejected("the order message has no OBR")
    for order in found:
        if not order.accession:
            raise ConnectorRejected("the order has no accession, filler or placer number (IPC-1, OBR-18, OBR-3, "
                                    "OBR-2)")
    return found


def _order(pid: Segment | None, orc: Segment | None, tq1: Segment | None, obr: Segment) -> ImagingOrder:
    def p(n: int, component: int = 1, sub: int = 1) -> str:
        return pid.text(n, component, sub) if pid is not None else ""

    placer = (orc.text(2) if orc is not None else "") or obr.text(2)
    filler = (orc.text(3) if orc is not None else "") or obr.text(3)
    scheduled = obr.text(6) or (tq1.text(7) if tq1 is not None else "") or (
        orc.text(7, 4) if orc is not None else "")
    return ImagingOrder(
        control=(orc.text(1).upper() if orc is not None else "") or "NW", placer=placer, filler=filler,
        accession=obr.text(18) or filler or placer, code=obr.text(4, 1), description=obr.text(4, 2) or obr.text(4, 1),
        code_system=obr.text(4, 3), scheduled=scheduled, patient_id=p(3), patient_issuer=p(3, 4), family=p(5, 1),
        given=p(5, 2), birth_date=p(7)[:8], sex=p(8)[:1].upper(), referring_family=obr.text(16, 2),
        referring_given=obr.text(16, 3))
