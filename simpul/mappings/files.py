"""HL7v2 files as `simpul map` and `simpul diff` read them: one message, several, or an HL7 batch.

Each file is split with simpul.v2.split_file and each message read with simpul.v2.read_message,
the listener's reader (MSH, MSH-18 charset, no binary data): a message the listener would refuse
is refused here with the same reason. Kept apart from the CLI so any front end can call it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpul.errors import SimpulError
from simpul.mappings.loader import Mapping
from simpul.mappings.report import MapReport, merge_reports
from simpul.v2 import read_message, split_file


class FileRefused(SimpulError):
    """The file as a whole is not mapped; the text says why in one line (no patient data)."""


@dataclass
class MappedFile:
    bundles: list[dict[str, Any]] = field(default_factory=list)
    report: MapReport = field(default_factory=MapReport)


def map_file(data: bytes, mapping: Mapping) -> MappedFile:
    """Map every message of a file, or refuse the whole file (FileRefused) when one message cannot be
    mapped or the batch counts do not add up: never a file with one message silently left out."""
    split = split_file(data)
    if split.problems:
        raise FileRefused(f"{split.problems[0]}; nothing mapped")
    # No message in the file: the reader refuses the empty text with the listener's reason.
    found = split.messages or [b""]
    bundles, reports = [], []
    for n, raw in enumerate(found, 1):
        try:
            bundle, report = mapping.map_with_report(read_message(raw).text)
        except SimpulError as exc:
            if len(found) == 1:
                raise
            raise FileRefused(f"message {n} of {len(found)}: {exc}; nothing mapped") from exc
        bundles.append(bundle)
        reports.append(report)
    return MappedFile(bundles, merge_reports(reports))


def folder_messages(folder: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The decoded messages of a folder's `*.hl7` files as (label, text), and one line per message
    the reader refused ("file message 2: reason")."""
    messages: list[tuple[str, str]] = []
    refused: list[str] = []
    for path in sorted(folder.glob("*.hl7")):
        found = split_file(path.read_bytes()).messages
        for n, raw in enumerate(found, 1):
            label = path.name if len(found) == 1 else f"{path.name} message {n}"
            try:
                messages.append((label, read_message(raw).text))
            except SimpulError as exc:
                refused.append(f"{label}: refused: {exc}")
    return messages, refused
