"""Conformance report: map every corpus message, validate each Bundle with fhir.resources R4B, and
compare it element by element with the reference outputs that exist.

    python -m simpul.mappings.conformance tests/corpus

Each file is read as `simpul map` and the listener read a message (simpul.v2: batch envelopes,
MSH, MSH-18 charset, no binary data); a file may hold several messages. Per message type: mapped /
refused (by the reader, with the reason the listener's ACK would give) / failed (mapping or
validation) / unsupported; over the corpus: FHIR invariant failures (must be 0) and the fields the
maps left unused most often. A batch whose BTS-1/FTS-1 count does not match what it holds is a
failure of its own. Per resource type: top-level elements of the
reference resources that we produce with an equal value (matching), do not produce (missing), or
produce with another value (differing). Values are compared after dropping ids, references, meta
and narrative, which differ by design (references are urn:uuid fullUrls here). The references
(Microsoft FHIR-Converter, ReportStream, the IG sample) are not normative; see tests/corpus/SOURCES.md.
"""
from __future__ import annotations

import json
import pathlib
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from simpul.errors import MappingError, MessageError, NothingToMap, UnsupportedMessageType
from simpul.mappings.invariants import bundle_checks, definitions
from simpul.mappings.loader import load_mapping
from simpul.mappings.validation import validate_structure
from simpul.v2 import MessageHeader, read_header, read_message, split_file

REFERENCE_SUFFIXES = (".expected.json", ".reportstream.fhir.json", ".ig-sample.json")
_IGNORED = {"id", "reference", "fullUrl", "meta", "text", "div"}


@dataclass
class FieldCounts:
    matching: int = 0
    missing: int = 0
    differing: int = 0


@dataclass
class Report:
    """What `run` found; `str(report)` is the printable text."""

    corpus: str
    mapped: Counter[str] = field(default_factory=Counter)       # message type -> count
    failed: Counter[str] = field(default_factory=Counter)       # mapping or validation failed
    refused: Counter[str] = field(default_factory=Counter)      # the v2 reader refused the bytes
    unsupported: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)           # "file: reason" (no patient data)
    fields: dict[str, FieldCounts] = field(default_factory=lambda: defaultdict(FieldCounts))
    compared_files: int = 0
    unmapped_codes: Counter[str] = field(default_factory=Counter)
    unmapped_fields: Counter[str] = field(default_factory=Counter)   # "OBX-18" -> messages x times
    invariant_failures: list[str] = field(default_factory=list)       # "file: Type(entry n) key: meaning"
    invariant_warnings: Counter[str] = field(default_factory=Counter)  # warning key -> resources
    messages: int = 0

    @property
    def in_scope_failures(self) -> int:
        return sum(self.failed.values()) + len(self.invariant_failures)

    def __str__(self) -> str:
        lines = [f"Conformance report for {self.corpus}", "", "Per message type:",
                 f"  {'type':<12} {'mapped':>7} {'refused':>8} {'failed':>7} {'unsupported':>12}"]
        types = sorted(set(self.mapped) | set(self.refused) | set(self.failed) | set(self.unsupported))
        for t in types:
            lines.append(f"  {t:<12} {self.mapped[t]:>7} {self.refused[t]:>8} {self.failed[t]:>7} "
                         f"{self.unsupported[t]:>12}")
        lines.append(f"  {'total':<12} {sum(self.mapped.values()):>7} {sum(self.refused.values()):>8} "
                     f"{sum(self.failed.values()):>7} {sum(self.unsupported.values()):>12}")
        lines += ["", f"Per resource type, against {self.compared_files} reference outputs "
                      "(top-level elements of the reference resources):",
                  f"  {'resource':<22} {'matching':>9} {'missing':>8} {'differing':>10}"]
        for rtype in sorted(self.fields):
            c = self.fields[rtype]
            lines.append(f"  {rtype:<22} {c.matching:>9} {c.missing:>8} {c.differing:>10}")
        if self.failures:
            lines += ["", "Refusals, failures and unsupported types:"] + [f"  {f}" for f in self.failures]
        lines += ["", f"Messages: {self.messages}; mapped {sum(self.mapped.values())}, refused "
                      f"{sum(self.refused.values()) + sum(self.unsupported.values())} (with reason, above), "
                      f"failed {sum(self.failed.values())}; FHIR invariant failures: {len(self.invariant_failures)}"]
        lines += [f"  {f}" for f in self.invariant_failures[:20]]
        source = definitions()["source"]
        lines.append(f"  (the official FHIR {source['fhirVersion']} constraints, from {source['package']} "
                     f"{source['version']}; warnings, which do not fail: "
                     + (", ".join(f"{k} x{n}" for k, n in sorted(self.invariant_warnings.items())) or "none") + ")")
        if self.unmapped_fields:
            lines += ["", "Fields and segments the maps did not use, most frequent (SEG-n: times):"]
            lines += [f"  {name}: {n}" for name, n in self.unmapped_fields.most_common(15)]
        if self.unmapped_codes:
            lines += ["", "Codes with no vocabulary entry (kept as the original coding), most frequent:"]
            lines += [f"  {code}: {n}" for code, n in self.unmapped_codes.most_common(10)]
        return "\n".join(lines)


def _message_type(raw: bytes) -> str:
    try:
        header: MessageHeader = read_header(raw)
    except MessageError:
        return "unreadable"
    return header.message_type


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in sorted(value.items()) if k not in _IGNORED}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _resources(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in bundle.get("entry", []):
        res = entry.get("resource")
        if isinstance(res, dict) and "resourceType" in res:
            out[res["resourceType"]].append(res)
    return out


def compare(ours: dict[str, Any], reference: dict[str, Any], report: Report) -> None:
    """Count, per resource type, reference elements matched / missing / differing (resources paired in order)."""
    mine = _resources(ours)
    for rtype, refs in _resources(reference).items():
        counts = report.fields[rtype]
        produced = mine.get(rtype, [])
        for i, ref in enumerate(refs):
            own = produced[i] if i < len(produced) else {}
            for key, value in ref.items():
                if key in _IGNORED or key == "resourceType":
                    continue
                if key not in own:
                    counts.missing += 1
                elif _normalize(own[key]) == _normalize(value):
                    counts.matching += 1
                else:
                    counts.differing += 1


def run(corpus_dir: str | pathlib.Path, *, validate: bool = True) -> Report:
    """Map and check every `*.hl7` file in `corpus_dir`; never raises for a bad message."""
    corpus = pathlib.Path(corpus_dir)
    mapping = load_mapping("v2_to_fhir", base_dir=corpus)
    report = Report(str(corpus))
    for path in sorted(corpus.glob("*.hl7")):
        # No message in the file: the reader refuses the empty text with the listener's reason.
        split = split_file(path.read_bytes())
        for problem in split.problems:
            report.failed["file"] += 1
            report.failures.append(f"{path.name}: {problem}")
        found = split.messages or [b""]
        for number, raw in enumerate(found, start=1):
            name = path.name if len(found) == 1 else f"{path.name}#{number}"
            mtype = _message_type(raw)
            report.messages += 1
            try:
                text = read_message(raw).text
            except MessageError as exc:
                report.refused[mtype] += 1
                report.failures.append(f"{name}: refused: {exc}")
                continue
            try:
                bundle = mapping.map(text)
                if validate:
                    for severity, key, finding in bundle_checks(bundle):
                        if severity == "error":
                            report.invariant_failures.append(f"{name}: {finding}")
                        else:
                            report.invariant_warnings[key] += 1
                    validate_structure(bundle)
            except NothingToMap as exc:
                report.unsupported[mtype] += 1
                report.failures.append(f"{name}: {exc.reason}")
                continue
            except UnsupportedMessageType:
                report.unsupported[mtype] += 1
                report.failures.append(f"{name}: unsupported message type {mtype}")
                continue
            except MappingError as exc:
                report.failed[mtype] += 1
                report.failures.append(f"{name}: {exc}")
                continue
            report.mapped[mtype] += 1
            if len(found) > 1:
                continue  # reference outputs are per file, for files of one message
            stem = path.name[:-len(".hl7")]
            for suffix in REFERENCE_SUFFIXES:
                ref_path = corpus / (stem + suffix)
                if ref_path.exists():
                    report.compared_files += 1
                    compare(bundle, json.loads(ref_path.read_text(encoding="utf-8")), report)
    report.unmapped_codes = mapping.unmapped_codes
    report.unmapped_fields = mapping.unmapped_fields
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    corpus = args[0] if args else str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "corpus")
    if not pathlib.Path(corpus).is_dir():
        print(f"conformance: {corpus} is not a directory", file=sys.stderr)
        return 2
    report = run(corpus)
    print(report)
    return 1 if report.in_scope_failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
