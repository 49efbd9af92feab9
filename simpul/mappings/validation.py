"""Validate a Bundle with the fhir.resources R4B models (tests and the per-channel `validate: true`).

Cost: about 0.3-0.4 ms per resource, i.e. several times the cost of mapping itself; that is why
the hot path builds plain dicts and validation is opt-in per channel.
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from simpul.errors import MappingError


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Raise MappingError naming the resource type and element path of the first problems found."""
    # fhir.resources builds its models on import (about a second); only validating channels pay it.
    from fhir.resources.R4B.bundle import Bundle

    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        where = sorted({".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()})[:5]
        raise MappingError("FHIR R4B validation failed at " + "; ".join(where)) from None
