"""Business keys read at ingest so staff can find a message by what they know.

Patient identifier PID-3 (the medical record number: the repetition whose identifier type,
CX-5, is MR, else PI, else the first repetition; staff search by MRN, and the same patient must
get the same ordering key from an ADT that lists the national NIK first and a lab result that
sends only the MRN), visit number PV1-19, placer order
number ORC-2/OBR-2, filler order number ORC-3/OBR-3, accession OBR-18 (IPC-1 for imaging
orders). This runs on the hot path, so it is a few string splits on the first segments of
each kind and not a full parse.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BusinessKeys", "extract_business_keys", "study_uid_for_accession"]

import hashlib

from .segments import split_segments


def study_uid_for_accession(accession: str) -> str:
    """The Study Instance UID Simpul gives an imaging order (OMI IPC-3, the worklist item): a 2.25
    UUID-form UID derived from the accession number, so the OMI to the RIS, the modality worklist
    and the PACS study agree on it without a lookup, and a changed order keeps it."""
    digest = hashlib.blake2b(b"simpul-study:" + accession.encode(), digest_size=16).digest()
    return "2.25." + str(int.from_bytes(digest, "big"))


@dataclass(slots=True)
class BusinessKeys:
    patient_id: str = ""
    visit_number: str = ""
    placer_number: str = ""
    filler_number: str = ""
    accession_number: str = ""


_WANTED = ("PID", "PV1", "ORC", "OBR", "IPC")


def extract_business_keys(text: str | list[str], field_separator: str = "|", component_separator: str = "^",
                          repetition_separator: str = "~") -> BusinessKeys:
    """`text` is the decoded message, or its segments already split by `split_segments`."""
    keys = BusinessKeys()
    seen: set[str] = set()
    for line in (split_segments(text) if isinstance(text, str) else text):
        name = line[:3]
        if name not in _WANTED or name in seen or line[3:4] != field_separator:
            continue
        seen.add(name)
        fields = line.split(field_separator)

        def first(index: int) -> str:
            if index >= len(fields):
                return ""
            value = fields[index].split(repetition_separator, 1)[0].split(component_separator, 1)[0]
            return "" if value == '""' else value[:250]

        if name == "PID":
            keys.patient_id = _medical_record_number(fields[3] if len(fields) > 3 else "",
                                                     component_separator, repetition_separator)
        elif name == "PV1":
            keys.visit_number = first(19)
        elif name == "ORC":
            keys.placer_number = keys.placer_number or first(2)
            keys.filler_number = keys.filler_number or first(3)
        elif name == "OBR":
            keys.placer_number = keys.placer_number or first(2)
            keys.filler_number = keys.filler_number or first(3)
            keys.accession_number = keys.accession_number or first(18)
        elif name == "IPC":
            keys.accession_number = keys.accession_number or first(1)
    return keys


_PREFERRED_TYPES = ("MR", "PI")


def _medical_record_number(field: str, component_separator: str, repetition_separator: str) -> str:
    repetitions = [rep.split(component_separator) for rep in field.split(repetition_separator)]
    for wanted in _PREFERRED_TYPES:
        for components in repetitions:
            if len(components) > 4 and components[4] == wanted and components[0] not in ("", '""'):
                return components[0][:250]
    first = repetitions[0][0] if repetitions and repetitions[0] else ""
    return "" if first == '""' else first[:250]
