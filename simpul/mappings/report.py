"""What one mapping run used and what it left behind: no silent loss.

Every segment reader call marks the field it read (`Segment.used`). After a message is mapped,
each valued field no map read is counted as not mapped (`OBX-18`), and each segment no map read
at all by its name (`TQ1`). Z-segments are kept verbatim in the Provenance (or dropped, as the
channel says), and segments the channel drops are listed as such. Counts are per message; the
Mapping also keeps running totals for the conformance report and /metrics.

Components are counted for the fields whose datatype map is known (FIELD_TYPES: identifiers,
names, addresses, phones, people): a valued component that map never reads shows as `PID-3.6`. In
other fields the unit is the field (a field is "used" once any of its components was read).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from simpul.mappings.datatypes import READ_COMPONENTS
from simpul.v2 import Message, Segment

# Field 1 of these segments is a Set ID (a sequence number of the segment itself), not data.
_SET_ID_FIRST = {"PID", "PV1", "PV2", "OBX", "OBR", "NTE", "NK1", "AL1", "DG1", "PR1", "IN1", "IN2", "GT1",
                 "SPM", "TQ1", "TQ2", "FT1", "AIS", "AIG", "AIL", "AIP", "RGS", "ROL", "IAM", "PRB", "SAC",
                 "OBX", "RXR", "RXC", "CTI", "PD1", "DB1", "ACC", "UB1", "UB2", "TXA", "IPC", "BLG"}
# MSH-1/2 are the delimiters; MSH-15/16 ask for ACKs, which ingest answers, not the map; EVN-1
# repeats MSH-9's trigger event (kept for backward compatibility in the standard).
_STRUCTURAL = {"MSH": (1, 2, 15, 16), "EVN": (1,)}
# Fields mapped with one of the datatype maps of READ_COMPONENTS.
FIELD_TYPES = {
    ("PID", 2): "CX", ("PID", 3): "CX", ("PID", 4): "CX", ("MRG", 1): "CX",
    ("PID", 5): "XPN", ("PID", 9): "XPN", ("NK1", 2): "XPN", ("GT1", 3): "XPN",
    ("PID", 11): "XAD", ("NK1", 4): "XAD", ("GT1", 5): "XAD",
    ("PID", 13): "XTN", ("PID", 14): "XTN", ("NK1", 5): "XTN", ("NK1", 6): "XTN",
    ("PV1", 7): "XCN", ("PV1", 8): "XCN", ("PV1", 9): "XCN", ("PV1", 17): "XCN",
    ("ORC", 12): "XCN", ("OBR", 16): "XCN", ("OBX", 16): "XCN",
}


@dataclass
class MapReport:
    """Per message: segments that fed the output, what did not, and message-level counts."""

    segments_mapped: int = 0
    not_mapped: Counter[str] = field(default_factory=Counter)   # "OBX-18" or a whole segment "TQ1" -> count
    kept: Counter[str] = field(default_factory=Counter)         # Z-segments kept as an extension
    dropped: Counter[str] = field(default_factory=Counter)      # segments the channel drops
    counts: Counter[str] = field(default_factory=Counter)       # "unmatched_patient", "time_without_zone"
    skipped: Counter[str] = field(default_factory=Counter)      # "PID-7: not a v2 date" (unreadable values)

    @property
    def lost(self) -> bool:
        """True when anything the sender sent is in no output (what `simpul map --strict` refuses)."""
        return bool(self.not_mapped or self.dropped)

    def summary(self) -> str:
        """One line: `mapped 14 segments; not mapped: OBX-18 x3, ZPI (kept as extension)`."""
        parts = [_item(k, n) for k, n in sorted(self.not_mapped.items())]
        parts += [_item(k, n) + " (kept as extension)" for k, n in sorted(self.kept.items())]
        parts += [_item(k, n) + " (dropped by the channel)" for k, n in sorted(self.dropped.items())]
        line = f"mapped {self.segments_mapped} segment{'s' if self.segments_mapped != 1 else ''}"
        line += "; not mapped: " + ", ".join(parts) if parts else "; nothing left unmapped"
        notes = [f"{k} x{n}" if n > 1 else k for k, n in sorted(self.counts.items()) if n]
        if notes:
            line += "; " + ", ".join(notes)
        if self.skipped:
            line += "; unreadable: " + ", ".join(_item(k, n) for k, n in sorted(self.skipped.items()))
        return line


def merge_reports(reports: list[MapReport]) -> MapReport:
    """The reports of several messages (a batch file) added up."""
    total = MapReport()
    for r in reports:
        total.segments_mapped += r.segments_mapped
        total.not_mapped.update(r.not_mapped)
        total.kept.update(r.kept)
        total.dropped.update(r.dropped)
        total.counts.update(r.counts)
        total.skipped.update(r.skipped)
    return total


def _item(name: str, n: int) -> str:
    return f"{name} x{n}" if n > 1 else name


def account(msg: Message, *, z_kept: bool, dropped: list[str]) -> MapReport:
    """Count what the maps read of `msg` (call after mapping)."""
    report = MapReport()
    for name in dropped:
        report.dropped[name] += 1
    for seg in msg.segments:
        name = seg.name
        if name.startswith("Z"):
            (report.kept if z_kept else report.dropped)[name] += 1
            continue
        used = seg.used
        if not used:
            report.not_mapped[name] += 1
            continue
        report.segments_mapped += 1
        skip_first = name in _SET_ID_FIRST
        structural = _STRUCTURAL.get(name, ())
        for n in range(1, len(seg.fields)):
            if used >> n & 1 or (n == 1 and skip_first) or n in structural:
                continue
            value = seg.fields[n]
            if value and value != '""' and value.strip(seg.enc.repetition + seg.enc.component
                                                      + seg.enc.subcomponent + " "):
                report.not_mapped[f"{name}-{n}"] += 1
        for (seg_name, n), kind in FIELD_TYPES.items():
            if seg_name == name and used >> n & 1:
                _unread_components(seg, n, READ_COMPONENTS[kind], report)
    return report


def _unread_components(seg: Segment, n: int, read: set[int], report: MapReport) -> None:
    """Count each valued component of field n that its datatype map does not read (once per field)."""
    enc = seg.enc
    unread: set[int] = set()
    for rep in seg.reps(n):
        for i, comp in enumerate(rep.split(enc.component), 1):
            if i not in read and comp.strip(enc.subcomponent + " ") and comp != '""':
                unread.add(i)
    for i in sorted(unread):
        report.not_mapped[f"{seg.name}-{n}.{i}"] += 1
