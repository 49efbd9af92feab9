"""Structure check of an outbound message with hl7apy (HL7 v2.5.1 message structures, STRICT level)."""
from __future__ import annotations

from functools import cache
from typing import Any

from simpul.errors import MappingError

# hl7apy's 2.5.1 ORM_O01 structure models the OBR/RQD/RQ1/RXO/ODS/ODT *choice* as a sequence of six
# required segments, so every real ORM would fail. The check uses a copy in which the alternatives to
# OBR are optional and OBR stays required (the only choice these maps emit).
_ORM_CHOICE_GROUP = "ORM_O01_OBRRQDRQ1RXOODSODT_SUPPGRP"
_ORM_CHOICE_ALTERNATIVES = {"RQD", "RQ1", "RXO", "ODS", "ODT"}


def _relax_choice(reference: Any, in_choice: bool = False) -> Any:
    """Copy of a message reference ('sequence'/'choice', children) with the ORM choice relaxed."""
    children = []
    for name, sub, cardinality, kind in reference[1]:
        if kind == "GRP":
            sub = _relax_choice(sub, name == _ORM_CHOICE_GROUP)
        if in_choice and name in _ORM_CHOICE_ALTERNATIVES:
            cardinality = (0, 1)
        children.append((name, sub, cardinality, kind))
    return (reference[0], tuple(children), *reference[2:])


@cache
def _reference(structure: str) -> Any:
    # hl7apy reads its structure tables on import; only FHIR->v2 checks need them.
    from hl7apy import load_reference

    reference = load_reference(structure, "Message", "2.5.1")
    return _relax_choice(reference) if structure == "ORM_O01" else reference


def check_structure(text: str, structure: str) -> None:
    """Parse `text` with hl7apy at STRICT level and validate it against `structure` (e.g. "OML_O21").

    Raises MappingError naming the element hl7apy objected to; values never go into the message.
    """
    # hl7apy reads its structure tables on import; only FHIR->v2 checks need them.
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException, ValidationError
    from hl7apy.parser import parse_message
    from hl7apy.validation import Validator

    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        Validator.validate(message, reference=_reference(structure))
    except ValidationError as exc:
        # hl7apy's ValidationError texts name elements (e.g. "Missing required child PID.PID_5").
        raise MappingError(f"{structure} structure check failed: {exc}") from exc
    except HL7apyException as exc:  # other hl7apy errors may quote a value: keep only the kind
        raise MappingError(f"{structure} structure check failed ({type(exc).__name__})") from exc
