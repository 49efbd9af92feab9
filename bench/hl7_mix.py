"""The benchmark's message mix: ~60% ADT^A01/A08 (15 segments), ~40% ORU^R01 (10 OBX).

All data is synthetic (made-up names and identifiers). Every message gets a unique MSH-10 from
the caller; the patient is drawn from a pool so that per-patient delivery ordering behaves as
in a hospital feed (many patients, a few messages each) rather than one long queue.
"""
from __future__ import annotations

import random
from pathlib import Path

PATIENT_POOL = 2000

_ADT_TEMPLATE = (
    "MSH|^~\\&|SIMRS|RSUD_BENCH|SIMPUL|RSUD_BENCH|20261126083000+0700||ADT^{event}^ADT_A01|{control_id}|P|2.5.1"
    "|||AL|NE||UNICODE UTF-8\r"
    "EVN|{event}|20261126082900+0700\r"
    "PID|1||{mrn}^^^RSUD_BENCH^MR~31740{mrn_digits}^^^NIK^NNIDN||Pratama^Adi^Nugroho^^^^L||19800517|M|||"
    "Jl. Contoh No. 10^^Jakarta Pusat^DKI Jakarta^10110^IDN^H||^PRN^PH^^62^21^5550000|||M|ISL\r"
    "PD1|||PUSKESMAS CONTOH^^1001\r"
    "NK1|1|Pratama^Sari|SPO^Spouse^HL70063|Jl. Contoh No. 10^^Jakarta Pusat||^PRN^PH^^62^21^5550001\r"
    "NK1|2|Pratama^Budi|FTH^Father^HL70063\r"
    "PV1|1|I|MAWAR^{room}^1^RSUD_BENCH||||1234^Wijaya^Andi^^^dr.|||MED||||ADM|||1234^Wijaya^Andi^^^dr.|"
    "IP|V{mrn_digits}|||||||||||||||||||||||||20261126082500+0700\r"
    "PV2|||R50.9^Fever, unspecified^I10\r"
    "OBX|1|NM|8302-2^Body height^LN||170|cm^cm^UCUM|||||F\r"
    "OBX|2|NM|29463-7^Body weight^LN||68|kg^kg^UCUM|||||F\r"
    "AL1|1|DA|70618^Penicillin^RXNORM|MO|Rash\r"
    "AL1|2|FA|256349002^Peanut^SCT|MI|Itching\r"
    "DG1|1||R50.9^Fever, unspecified^I10||20261126082500+0700|A\r"
    "GT1|1||Pratama^Adi||Jl. Contoh No. 10^^Jakarta Pusat\r"
    "IN1|1|JKN^Jaminan Kesehatan Nasional|BPJS001|BPJS Kesehatan|||||||||||||||||||||||||||||||||"
    "000{mrn_digits}\r"
)

_ORU_HEAD = (
    "MSH|^~\\&|LIS|LAB_BENCH|SIMPUL|RSUD_BENCH|20261126101500+0700||ORU^R01^ORU_R01|{control_id}|P|2.5.1"
    "|||||IDN|UNICODE UTF-8\r"
    "PID|1||{mrn}^^^RSUD_BENCH^MR||Pratama^Adi||19800517|M\r"
    "PV1|1|I|MAWAR^{room}^1||||||||||||||||V{mrn_digits}\r"
    "ORC|RE|ORD{mrn_digits}|LAB{mrn_digits}\r"
    "OBR|1|ORD{mrn_digits}|LAB{mrn_digits}|58410-2^CBC panel^LN|||20261126080000+0700|||||||||"
    "1234^Wijaya^Andi||||||20261126101000+0700|||F\r"
)
_ORU_RESULTS = (
    ("6690-2", "Leukocytes [#/volume] in Blood", "7.2", "10*3/uL", "4.0-11.0", "N"),
    ("789-8", "Erythrocytes [#/volume] in Blood", "4.8", "10*6/uL", "4.2-5.9", "N"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "13.9", "g/dL", "13.0-17.0", "N"),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood", "41", "%", "39-50", "N"),
    ("787-2", "MCV [Entitic volume]", "88", "fL", "80-100", "N"),
    ("785-6", "MCH [Entitic mass]", "29", "pg", "27-33", "N"),
    ("786-4", "MCHC [Mass/volume]", "33", "g/dL", "32-36", "N"),
    ("777-3", "Platelets [#/volume] in Blood", "95", "10*3/uL", "150-400", "L"),
    ("770-8", "Neutrophils/100 leukocytes in Blood", "62", "%", "40-75", "N"),
    ("736-9", "Lymphocytes/100 leukocytes in Blood", "28", "%", "20-45", "N"),
)
_ORU_TAIL = "".join(
    f"OBX|{i}|NM|{code}^{name}^LN||{value}|{unit}^{unit}^UCUM|{ref}|{flag}|||F|||20261126100000+0700\r"
    for i, (code, name, value, unit, ref, flag) in enumerate(_ORU_RESULTS, start=1))


def message(control_id: str, rng: random.Random, *, patients: int = PATIENT_POOL) -> bytes:
    """One message of the mix with MSH-10 = ``control_id`` (which must not contain '|' or '^')."""
    patient = rng.randrange(patients)
    values = {"control_id": control_id, "mrn": f"MR{patient:06d}", "mrn_digits": f"{patient:06d}",
              "room": str(100 + patient % 50)}
    draw = rng.random()
    if draw < 0.6:
        values["event"] = "A01" if draw < 0.3 else "A08"
        return _ADT_TEMPLATE.format(**values).encode()
    return (_ORU_HEAD.format(**values) + _ORU_TAIL).encode()


CONTROL_ID_MARKER = "{CID}"


def write_templates(path: Path, *, count: int = 2000, patients: int = PATIENT_POOL, seed: int = 1) -> None:
    """Message templates for the compiled driver: ``count`` messages of the mix, separated by
    0x1C, each with the marker {CID} where MSH-10 goes (the driver fills in a unique id).
    ``patients`` = 1 puts every message on one ordering key."""
    rng = random.Random(seed)
    chosen = [message(CONTROL_ID_MARKER, rng, patients=patients) for _ in range(count)]
    path.write_bytes(b"\x1c".join(chosen))
