"""Radiology order messages for the imaging connectors' peers (worklist, dicomweb): order n has
accession number CONF<n>; an ADT stands in for a message such a connector must refuse (final)."""
from __future__ import annotations

from simpul.connectors.base import Outgoing

from tests.connectors.conformance import PATIENT_MARKER


def accession(number: int) -> str:
    return f"CONF{number}"


def imaging_order(number: int) -> Outgoing:
    payload = (f"MSH|^~\\&|SIMPUL|HOSP|RIS|RAD|20240101120000||ORM^O01^ORM_O01|CONF-{number}|P|2.5.1\r"
               f"PID|1||MR{number}^^^HOSP^MR||{PATIENT_MARKER}||19700101|F\r"
               f"ORC|NW|PL{number}\r"
               f"OBR|1|PL{number}||CT-HEAD^CT head^L|R|20240102083000||||||||||||{accession(number)}\r").encode()
    return Outgoing(payload=payload, content_type="x-application/hl7-v2+er7", control_id=f"CONF-{number}",
                    channel="conformance", destination="out", delivery_id=number, message_type="ORM^O01")


def not_an_order(number: int) -> Outgoing:
    payload = (f"MSH|^~\\&|SIMPUL|HOSP|RIS|RAD|20240101120000||ADT^A08^ADT_A01|CONF-{number}|P|2.5.1\r"
               f"PID|1||MR{number}^^^HOSP^MR||{PATIENT_MARKER}\r").encode()
    return Outgoing(payload=payload, content_type="x-application/hl7-v2+er7", control_id=f"CONF-{number}",
                    channel="conformance", destination="out", delivery_id=number, message_type="ADT^A08")


class OrderNumbers:
    """Which numbers were made into refused messages by `answer_next("final")` (stable per number)."""

    def __init__(self) -> None:
        self.refuse_next = False
        self.refused: set[int] = set()

    def outgoing(self, number: int) -> Outgoing:
        if self.refuse_next and number not in self.refused:
            self.refused.add(number)
            self.refuse_next = False
        return not_an_order(number) if number in self.refused else imaging_order(number)
