"""Validate a Bundle with the fhir.resources R4B models and the R4 invariants (tests, the conformance
report and the per-channel `validate: true`).

Cost: about 0.3-0.4 ms per resource for the models and about 1 ms for the official R4 invariants
(FHIRPath; the 2211 corpus resources in 2.2 s, against 2.7 s for the earlier hand-written list),
i.e. several times the cost of mapping itself; that is why the hot path builds plain dicts and
validation is opt-in per channel.
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from simpul.errors import MappingError
from simpul.mappings.invariants import check_invariants


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Raise MappingError naming the resource type and element path (or invariant) of the first problems found."""
    validate_structure(bundle)
    check_invariants(bundle)


def validate_structure(bundle: dict[str, Any]) -> None:
    """The fhir.resources R4B models only (types, cardinality, required elements)."""
    # fhir.resources builds its models on import (about a second); only validating channels pay it.
    from fhir.resources.R4B.bundle import Bundle

    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        where = sorted({".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()})[:5]
        raise MappingError("FHIR R4B validation failed at " + "; ".join(where)) from None
