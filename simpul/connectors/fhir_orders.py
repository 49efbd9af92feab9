"""fhir_orders: receive orders as FHIR ServiceRequests (POST/PUT [base]/ServiceRequest) and send them on as HL7v2.

Features
    `POST [base]/ServiceRequest` places an order; `PUT [base]/ServiceRequest/<id>` changes it
    (status active: ORC-1 XO) or cancels it (status revoked or entered-in-error: ORC-1 CA). The
    body is a ServiceRequest with its Patient, Encounter, Specimen and requester `contained`, or a
    Bundle holding them. Each request becomes one ORM^O01, OML^O21 or OMI^O23 (by the order's
    category, see `message_types`), stored like any received message (commit, then answer), so
    channels filter, route, track and deliver it as usual.
    A resent identical request is recognised (the MSH-10 is a hash of the request) and answered
    as the first was, without a second order.
Connection
    host, port, base_path (default /fhir).
Options
    message_type and message_types (per ServiceRequest.category code); the MSH-3..6 applications and
    facilities written into the message; dedup window.
Errors
    An OperationOutcome: 400 not JSON or not a ServiceRequest/Bundle, 422 the order cannot be
    written as HL7v2 (the issue names the FHIR element, never its value), 503 it could not be
    stored (send it again), 404/405 other paths and methods.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from simpul.config_types import IngestOptions
from simpul.connectors.base import ConnectorSpec

OrderMessage = Literal["OML^O21", "ORM^O01", "OMI^O23"]


class FhirOrderSource(IngestOptions):
    """A FHIR-style order endpoint; every accepted ServiceRequest becomes one HL7v2 order message."""

    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 for every interface.")
    port: int = Field(ge=0, le=65535, description="TCP port (0 picks a free one, for tests).", examples=[8095])
    base_path: str = Field("/fhir", pattern=r"^/[A-Za-z0-9/_.-]*$",
                           description="FHIR base path; orders go to <base_path>/ServiceRequest.")
    message_type: OrderMessage = Field("OML^O21", description="The HL7v2 order message to write.")
    message_types: dict[str, OrderMessage] = Field(
        default_factory=dict, description="Per ServiceRequest.category code (e.g. SNOMED 363679005 imaging), "
                                          "the message to write instead of message_type.",
        examples=[{"363679005": "OMI^O23"}])
    sending_application: str = Field("SIMPUL", description="MSH-3 of the written messages.")
    sending_facility: str = Field("", description="MSH-4.")
    receiving_application: str = Field("", description="MSH-5 (the LIS or RIS).", examples=["LIS"])
    receiving_facility: str = Field("", description="MSH-6.")
    max_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest accepted request body (413 above).")


CONNECTOR = ConnectorSpec(
    name="fhir_orders", source=FhirOrderSource,
    source_description="Receive FHIR ServiceRequests (POST/PUT) and turn each into an HL7v2 order message.")
