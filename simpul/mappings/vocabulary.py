"""v2 tables as data: load `vocab/*.json` once and look codes up.

A code with no entry is never dropped: callers keep it as the original coding
(`original_coding`) and the lookup counts it in the message's `unmapped` counter.
"""
from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

VOCAB_DIR = Path(__file__).parent / "vocab"
V2_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-"


class Table:
    __slots__ = ("name", "v2_system", "target_system", "code_systems", "entries", "upper", "source")

    def __init__(self, name: str, doc: dict[str, Any]) -> None:
        self.name = name
        self.v2_system: str = doc.get("v2_system", "")
        self.target_system: str | None = doc.get("target_system")
        self.entries: dict[str, str] = doc["map"]
        # Target codes that live in another code system than `target_system` (v2-0002 UNK -> NullFlavor).
        self.code_systems: dict[str, str] = doc.get("code_systems", {})
        # v2 codes are case-sensitive in the standard, but senders write "ARRIVED" or "booked".
        self.upper: dict[str, str] = {k.upper(): v for k, v in doc["map"].items()}
        self.source: str = doc.get("source", "")


@lru_cache(maxsize=None)
def table(name: str) -> Table:
    """The table in vocab/v2-<name>.json (or vocab/<name>.json)."""
    path = VOCAB_DIR / f"v2-{name}.json"
    if not path.exists():
        path = VOCAB_DIR / f"{name}.json"
    return Table(name, json.loads(path.read_text(encoding="utf-8")))


def lookup(name: str, code: str, unmapped: Counter[str] | None) -> str | None:
    """Mapped FHIR code for a v2 code, or None (counted as `<table>:<code>` in `unmapped`)."""
    if not code:
        return None
    t = table(name)
    hit = t.entries.get(code)
    if hit is None:
        hit = t.upper.get(code.upper())
    if hit is None and unmapped is not None:
        unmapped[f"{name}:{code}"] += 1
    return hit


def original_coding(name: str, code: str, display: str = "") -> dict[str, str]:
    """The v2 coding kept when a table has no entry for `code`."""
    coding = {"system": table(name).v2_system, "code": code}
    if display:
        coding["display"] = display
    return coding
