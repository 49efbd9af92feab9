"""Load every channel file of a folder, validate each, and check the rules across files."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from simpul.engine.config.channel import Channel
from simpul.engine.config.validation import validate_document
from simpul.engine.config.yaml_marks import Finding, MarkedDocument, load_marked


@dataclass
class LoadedChannel:
    channel: Channel
    path: Path
    document: MarkedDocument


def channel_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")))
        else:
            files.append(path)
    return files


def channel_files_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, mtime and size of every channel file: what hot reload compares to notice an edit."""
    return tuple((path.name, path.stat().st_mtime_ns, path.stat().st_size)
                 for path in channel_files([folder])) if folder.is_dir() else ()


def load_channels(paths: Iterable[Path], *, environ: Mapping[str, str] | None = None,
                  relative_to: Path | None = None) -> tuple[list[LoadedChannel], list[Finding]]:
    loaded: list[LoadedChannel] = []
    findings: list[Finding] = []
    for path in channel_files(paths):
        shown = _display(path, relative_to)
        if not path.exists():
            findings.append(Finding(shown, 1, 1, "", "no such file"))
            continue
        document = load_marked(path, display_name=shown, environ=environ)
        channel, problems = validate_document(document, Channel)
        findings.extend(problems)
        if channel is not None:
            loaded.append(LoadedChannel(channel, path, document))
    findings.extend(_cross_file_findings(loaded))
    return loaded, findings


def _display(path: Path, relative_to: Path | None) -> str:
    base = relative_to or Path.cwd()
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _cross_file_findings(loaded: list[LoadedChannel]) -> list[Finding]:
    findings: list[Finding] = []
    names: dict[str, LoadedChannel] = {}
    ports: dict[int, LoadedChannel] = {}
    for item in loaded:
        name = item.channel.name
        if name in names:
            findings.append(item.document.finding(("name",), f"channel name '{name}' is also used in "
                                                              f"{names[name].document.file}"))
        names.setdefault(name, item)
        kind = item.channel.source.kind
        source = item.channel.source.settings
        port = getattr(source, "port", 0)
        if port == 0:   # no port (a source that does not listen) or 0 (any free port, tests)
            continue
        other = ports.get(port)
        if other is None:
            ports[port] = item
            continue
        other_kind = other.channel.source.kind
        if other_kind != kind:
            findings.append(item.document.finding(("source", kind), f"port {port} is also an "
                                                  f"{other_kind} source in {other.document.file}"))
        elif kind == "mllp" and other.channel.source.settings.model_dump(exclude={"port"}) != \
                source.model_dump(exclude={"port"}):
            # Channels may share one listener, but then they must agree on how it listens.
            findings.append(item.document.finding(("source", "mllp"), f"port {port} is shared with "
                                                  f"{other.document.file} but its listener settings differ"))
        elif kind == "http" and other.channel.source.settings.model_dump(exclude={"port"}) != \
                source.model_dump(exclude={"port"}) and getattr(other.channel.source.settings, "path", None) == \
                getattr(source, "path", None):
            # Channels may share one URL (each filters what it takes) if they read it the same way.
            findings.append(item.document.finding(("source", "http"), f"port {port} path "
                                                  f"{getattr(source, 'path', '')} is shared with "
                                                  f"{other.document.file} but its settings differ"))
    return findings
