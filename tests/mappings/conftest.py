from __future__ import annotations

import pathlib
from typing import Any

import pytest

from simpul.mappings import Mapping, MappingSpec, load_mapping
from simpul.mappings.validation import validate_bundle

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture
def mapping() -> Mapping:
    return load_mapping("v2_to_fhir", base_dir=pathlib.Path("."))


def make_mapping(**options: Any) -> Mapping:
    return load_mapping(MappingSpec(**options), base_dir=pathlib.Path("."))


def msg(*segments: str) -> str:
    return "\r".join(segments)


def seg(name: str, **fields: str) -> str:
    """Build a segment from field numbers: seg("PID", f3="42") -> "PID|||42"."""
    n = max(int(k[1:]) for k in fields)
    values = [""] * (n + 1)
    values[0] = name
    for k, v in fields.items():
        values[int(k[1:])] = v
    return "|".join(values)


MSH = "MSH|^~\\&|SIMRS|RSUD|HUB|HUB|20240115083000+0700||{type}|CTRL1|P|2.5.1"


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def entry_of(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def check_bundle(bundle: dict[str, Any]) -> None:
    """Valid R4B, a transaction, and every reference resolves inside the Bundle."""
    validate_bundle(bundle)
    assert bundle["type"] == "transaction"
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(urls) == len(bundle["entry"])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                assert ref in urls, f"dangling reference {ref}"
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for e in bundle["entry"]:
        walk(e["resource"])
