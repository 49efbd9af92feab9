"""The `mapping:` value of a channel file."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MappingSpec(BaseModel):
    """How a channel turns HL7v2 into FHIR.

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
        description="UTC offset (e.g. '+07:00') applied to v2 times that carry none. Without it such "
                    "times keep only their date, because FHIR dateTime needs an offset once a time is given.",
        pattern=r"^[+-]\d\d:\d\d$|^Z$",
        examples=["+07:00"],
    )
    validate_output: bool = Field(
        False, alias="validate",
        description="Validate every Bundle with fhir.resources R4B models (about 0.3-0.4 ms per resource).")
