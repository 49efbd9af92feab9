"""Config value types shared by every layer that reads channel YAML.

They sit below connectors and engine so that a connector's config model can use them without
importing the engine (the engine imports connectors, never the other way round).

- `Duration`: written the way analysts write it: 500ms, 30s, 5m, 2h, 7d (or plain seconds).
- `StrictModel`: a pydantic model that refuses unknown keys, so a typo becomes a finding.
- `IngestOptions`: how a source reads and dedups what arrives, whatever its transport.
"""
from __future__ import annotations

import codecs
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 500ms, 30s, 5m, 2h or 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("must be a duration such as 500ms, 30s, 5m, 2h or 7d")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestOptions(StrictModel):
    """How a source reads and dedups what arrives, whatever the transport."""

    default_charset: str = Field("utf-8", description="Charset when MSH-18 is empty.")
    fallback_charset: str | None = Field(
        None, description="Charset to try when the bytes do not decode in the declared one "
                          "(e.g. windows-1252 for senders that mislabel Latin-1 text). "
                          "Without it such a message is answered AE.")
    dedup_window: Duration = Field(86400.0, description="A resent message (same MSH-3, MSH-4, MSH-10 and "
                                                         "content) within this window gets its original ACK back.")

    @field_validator("default_charset", "fallback_charset")
    @classmethod
    def _known_codec(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown charset '{value}'") from None
        return value
