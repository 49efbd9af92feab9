"""The `mapping:` value of a channel file."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PatientIdentity(BaseModel):
    """Which patient identifiers may find an existing Patient (docs/mappings/index.md "Patient identity").

    A wrong match merges two people into one record, which nobody can undo safely; a missed match
    makes a duplicate, which a merge can. So the defaults match only on what the sender scopes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: list[str] = Field(
        default_factory=lambda: ["MR", "PI"],
        description="Identifier types (PID-3 CX-5, table 0203) that form the match key, in order; a PID-3 "
                    "repetition without CX-5 counts as MR. `PID-19`, `SS` or `NNIDN` (NIK) only when listed.",
        examples=[["MR", "PI"], ["MR", "PID-19"]])
    system: str | None = Field(
        None,
        description="Identifier.system for PID-3 values that carry no assigning authority (CX-4); without "
                    "it such a value is kept on the Patient but never matched on.",
        examples=["https://rsud.example.id/id/mrn"])
    national_id_system: str | None = Field(
        None,
        description="Identifier.system of PID-19; default from MSH-17 (ID/IDN: NIK "
                    "https://fhir.kemkes.go.id/id/nik, US/USA: http://hl7.org/fhir/sid/us-ssn, else none).",
        examples=["https://fhir.kemkes.go.id/id/nik"])
    placeholders: list[str] = Field(
        default_factory=list,
        description="More values that never become a match key, besides one repeated character "
                    "(999999999, 0000), 123456789 and UNKNOWN-like words.",
        examples=[["11111", "TEMP"]])


class OutboundHeader(BaseModel):
    """MSH fields of the HL7v2 a FHIR-input map writes (fhir_to_oml_o21, fhir_to_orm_o01, fhir_to_mfn_m02)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sending_application: str = Field("SIMPUL", description="MSH-3.", examples=["SIMPUL"])
    sending_facility: str = Field("", description="MSH-4.", examples=["RSUD"])
    receiving_application: str = Field("", description="MSH-5.", examples=["LIS"])
    receiving_facility: str = Field("", description="MSH-6.", examples=["LAB"])


class MappingSpec(BaseModel):
    """How a channel turns HL7v2 into FHIR (or, with a fhir_to_* map, FHIR event data into HL7v2).

    The string form `mapping: v2_to_fhir` equals `MappingSpec(builtin="v2_to_fhir")`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    builtin: str = Field("v2_to_fhir", description="Name of the built-in map.", examples=["v2_to_fhir"])
    module: str | None = Field(
        None,
        description="Analyst module: a .py path relative to the channel file's folder that defines "
                    "`transform(message, bundle) -> bundle`; it runs after the built-in map.",
        examples=["mappings/rs_sehat.py"],
    )
    identifier_systems: dict[str, str] = Field(
        default_factory=dict,
        description="Assigning authority (CX-4 / HD-1 or HD-2) -> Identifier.system URI; wins over the defaults.",
        examples=[{"RSUD": "https://rsud.example.id/id/mrn"}],
    )
    code_systems: dict[str, str] = Field(
        default_factory=dict,
        description="v2 coding system name (CWE-3) -> Coding.system URI; wins over the built-in table.",
        examples=[{"LOCAL-LAB": "https://lab.example.id/codes"}],
    )
    drop_segments: list[str] = Field(
        default_factory=list, description="Segment ids ignored before mapping.", examples=[["NTE", "ZPI"]])
    z_segments: Literal["extension", "drop"] = Field(
        "extension", description="Z-segments: kept verbatim in a MessageHeader-free Bundle extension, or dropped.")
    default_timezone: str | None = Field(
        None,
        description="UTC offset (e.g. '+07:00') for v2 times that carry none. Without it the engine's "
                    "default_timezone applies, else MSH-7's own offset; only with none of them is such a "
                    "time cut to its date (FHIR dateTime needs an offset once a time is given).",
        pattern=r"^[+-]\d\d:\d\d$|^Z$",
        examples=["+07:00"],
    )
    patient_identity: PatientIdentity = Field(
        default_factory=PatientIdentity,
        description="Which identifiers find an existing Patient; see Mappings, \"Patient identity\".")
    header: OutboundHeader = Field(
        default_factory=OutboundHeader,
        description="fhir_to_oml_o21 / fhir_to_orm_o01 / fhir_to_mfn_m02 only: the MSH of the message written; "
                    "MSH-10 is derived "
                    "from the event id, so a re-sent event gives the same control id.")
    validate_output: bool = Field(
        False, alias="validate",
        description="Validate every Bundle with fhir.resources R4B models (about 0.3-0.4 ms per resource).")
