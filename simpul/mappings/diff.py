"""`simpul diff`: what an edited channel mapping would change in the FHIR output, before it goes live.

The same messages (the channel's last N stored ones, or a folder of files) are mapped with the
running channel and with the edited one; the two Bundles of each message are compared resource by
resource and field by field. Resources are paired by fullUrl (deterministic: the same business key
gives the same fullUrl), and those left over by resource type in order, so a change of identity
key shows as changed fields, not as one resource removed and another added.

    message 12 ORU^R01 LAB-0012
      ~ DiagnosticReport[0].effectiveDateTime: "2024-01-15" -> "2024-01-15T07:30:00+07:00"
      + Observation[3]
    50 messages: 12 changed, 38 unchanged, 0 newly failing; 20 fields changed, 1 resource added, 0 removed
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson

# Elements that differ between any two runs or carry no mapping decision.
_IGNORED_KEYS = {"fullUrl"}


@dataclass
class MessageDiff:
    label: str                      # "message 12 ORU^R01 LAB-0012" or a file name
    lines: list[str] = field(default_factory=list)
    fields_changed: int = 0
    added: int = 0
    removed: int = 0
    newly_failing: bool = False
    now_mapping: bool = False


@dataclass
class DiffReport:
    messages: list[MessageDiff] = field(default_factory=list)

    @property
    def changed(self) -> list[MessageDiff]:
        return [m for m in self.messages if m.lines]

    def summary(self) -> str:
        changed = self.changed
        counts: Counter[str] = Counter()
        for m in self.messages:
            counts["fields"] += m.fields_changed
            counts["added"] += m.added
            counts["removed"] += m.removed
            counts["failing"] += m.newly_failing
            counts["fixed"] += m.now_mapping
        total = len(self.messages)
        return (f"{total} message{'s' if total != 1 else ''}: {len(changed)} changed, {total - len(changed)} "
                f"unchanged, {counts['failing']} newly failing, {counts['fixed']} newly mapping; "
                f"{counts['fields']} field{'s' if counts['fields'] != 1 else ''} changed, "
                f"{counts['added']} resource{'s' if counts['added'] != 1 else ''} added, {counts['removed']} removed")

    def __str__(self) -> str:
        out: list[str] = []
        for m in self.changed:
            out.append(m.label)
            out += [f"  {line}" for line in m.lines]
        out.append(self.summary())
        return "\n".join(out)


MapFn = Callable[[str], dict[str, Any]]


def diff_messages(running: MapFn, edited: MapFn, messages: Iterable[tuple[str, str]]) -> DiffReport:
    """Map each (label, text) with both mappings and compare. A mapping error is an outcome too."""
    report = DiffReport()
    for label, text in messages:
        before, before_error = _attempt(running, text)
        after, after_error = _attempt(edited, text)
        item = MessageDiff(label)
        if before_error or after_error:
            if before_error != after_error:
                item.lines.append(f"! mapping: {before_error or 'ok'} -> {after_error or 'ok'}")
                item.newly_failing = after_error is not None and before_error is None
                item.now_mapping = before_error is not None and after_error is None
        if before is not None and after is not None:
            compare_bundles(before, after, item)
        elif after is not None:
            item.added = len(after.get("entry", []))
        elif before is not None:
            item.removed = len(before.get("entry", []))
        report.messages.append(item)
    return report


def _attempt(fn: MapFn, text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return fn(text), None
    except Exception as exc:  # noqa: BLE001 - any mapping error is a result to compare, not a crash
        return None, f"{type(exc).__name__}: {exc}"


def compare_bundles(before: dict[str, Any], after: dict[str, Any], item: MessageDiff) -> None:
    old = [e for e in before.get("entry", []) if isinstance(e.get("resource"), dict)]
    new = [e for e in after.get("entry", []) if isinstance(e.get("resource"), dict)]
    names_old, names_new = _names(old), _names(new)
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
    by_url = {e.get("fullUrl"): e for e in new}
    unpaired_new = list(new)
    unpaired_old = []
    for e in old:
        twin = by_url.get(e.get("fullUrl"))
        if twin is not None and twin in unpaired_new:
            pairs.append((e, twin))
            unpaired_new.remove(twin)
        else:
            unpaired_old.append(e)
    for e in unpaired_old:
        rtype = e["resource"]["resourceType"]
        twin = next((n for n in unpaired_new if n["resource"]["resourceType"] == rtype), None)
        if twin is not None:
            unpaired_new.remove(twin)
        pairs.append((e, twin))
    pairs += [(None, n) for n in unpaired_new]
    # References point at fullUrls; compare them by the name of what they point at.
    urls_old = {e.get("fullUrl"): names_old[id(e)] for e in old}
    urls_new = {e.get("fullUrl"): names_new[id(e)] for e in new}
    for a, b in pairs:
        if a is None and b is not None:
            item.added += 1
            item.lines.append(f"+ {names_new[id(b)]}")
        elif b is None and a is not None:
            item.removed += 1
            item.lines.append(f"- {names_old[id(a)]}")
        elif a is not None and b is not None:
            flat_a = _flatten({k: v for k, v in a.items() if k not in _IGNORED_KEYS}, "", urls_old)
            flat_b = _flatten({k: v for k, v in b.items() if k not in _IGNORED_KEYS}, "", urls_new)
            name = names_new[id(b)]
            for path in sorted(set(flat_a) | set(flat_b)):
                va, vb = flat_a.get(path), flat_b.get(path)
                if va != vb:
                    item.fields_changed += 1
                    item.lines.append(f"~ {name}{path}: {_show(va)} -> {_show(vb)}")


def _names(entries: list[dict[str, Any]]) -> dict[int, str]:
    seen: Counter[str] = Counter()
    out = {}
    for e in entries:
        rtype = e["resource"]["resourceType"]
        out[id(e)] = f"{rtype}[{seen[rtype]}]"
        seen[rtype] += 1
    return out


def _flatten(node: Any, path: str, urls: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "resource":
                out.update(_flatten(v, path, urls))
                continue
            if k == "id" and path == "":
                continue  # the deterministic id follows the key; a key change shows in request.url
            out.update(_flatten(v, f"{path}.{k}", urls))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.update(_flatten(v, f"{path}[{i}]", urls))
    elif isinstance(node, str) and node.startswith("urn:uuid:") and node in urls:
        out[path] = "-> " + urls[node]
    else:
        out[path] = node
    return out


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str) and value.startswith("-> "):
        return value[3:]
    text = orjson.dumps(value).decode()
    return text if len(text) <= 120 else text[:117] + "..."
