"""State shared by the segment maps while one message is mapped."""
from __future__ import annotations

from collections import Counter
from typing import Any

from simpul.mappings.bundle import BundleBuilder
from simpul.mappings.options import MappingSpec
from simpul.v2 import Message, Segment


class MapContext:
    """One message being mapped: the parsed message, the options, the Bundle under construction,
    the references every clinical resource points at, and counters of what could not be mapped."""

    __slots__ = ("msg", "enc", "options", "builder", "unmapped", "skipped", "counts", "patient", "encounter",
                 "control_id", "timezone", "_identifier_systems", "_code_systems")

    def __init__(self, msg: Message, options: MappingSpec, identifier_systems: dict[str, str],
                 code_systems: dict[str, str]) -> None:
        self.msg = msg
        self.enc = msg.enc
        self.options = options
        self.builder = BundleBuilder()
        self.unmapped: Counter[str] = Counter()   # "<table>:<code>" -> count
        self.skipped: Counter[str] = Counter()    # "<SEG>-<n>: reason" -> count (unreadable values)
        self.counts: Counter[str] = Counter()     # message-level events, e.g. "unmatched_patient"
        self.patient: str | None = None
        self.encounter: str | None = None
        self.control_id = msg.control_id
        # Offset for v2 times that carry none (docs/mappings/index.md "Time zones"): the channel's or engine's
        # default_timezone, else the loader fills in MSH-7's own offset.
        self.timezone: str | None = options.default_timezone
        self._identifier_systems = identifier_systems
        self._code_systems = code_systems

    def key(self, seg: Segment, *parts: str) -> str:
        """Deterministic key for a resource with no business identifier: message id + segment position."""
        return "|".join((self.control_id, seg.name, str(seg.index), *parts))

    def identifier_system(self, authority: str) -> str | None:
        return self._identifier_systems.get(authority) or self._identifier_systems.get(authority.upper())

    def code_system(self, name: str) -> str | None:
        return self._code_systems.get(name) or self._code_systems.get(name.upper())

    def skip(self, seg: Segment, field: int, reason: str) -> None:
        self.skipped[f"{seg.name}-{field}: {reason}"] += 1

    def ref(self, full_url: str | None) -> dict[str, Any] | None:
        return {"reference": full_url} if full_url else None
