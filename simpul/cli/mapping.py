"""`simpul map` (HL7v2 files to FHIR), `simpul diff` (what a channel edit changes) and
`simpul conformance` (a whole corpus). The work is done in simpul.mappings.files,
simpul.mappings.diff and simpul.engine.diff; this module reads options and prints."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer

from simpul.cli.common import ConfigOption, fail, settings_from
from simpul.engine.channel_runtime import ChannelRuntime, effective_mapping_spec
from simpul.engine.config.channels import load_channels
from simpul.engine.diff import stored_messages
from simpul.errors import ConfigError, SimpulError
from simpul.mappings import conformance as conformance_report
from simpul.mappings import load_mapping
from simpul.mappings.diff import diff_messages
from simpul.mappings.files import folder_messages, map_file
from simpul.mappings.loader import Mapping


def map_message(file: Annotated[Path, typer.Argument(help="An HL7v2 file: one message, several, or an HL7 batch.")],
                channel: Annotated[Optional[str], typer.Option(help="Use this channel's mapping.")] = None,
                strict: Annotated[bool, typer.Option("--strict", help="Exit 3 when any field or segment "
                                                     "was not mapped.")] = False,
                config: ConfigOption = None) -> None:
    """Map HL7v2 to FHIR: one message prints its Bundle (JSON); several (or a batch) print one
    Bundle per line (NDJSON). A one-line summary of what was not mapped goes to stderr."""
    try:
        mapping = _mapping_for(channel, config)
        try:
            data = file.read_bytes()
        except OSError as exc:
            fail(f"simpul map: {file}: {exc.strerror}", 2)
        mapped = map_file(data, mapping)
    except SimpulError as exc:
        fail(f"simpul map: {file}: {exc}", 2)
    bundles = mapped.bundles
    if len(bundles) == 1:
        sys.stdout.write(orjson.dumps(bundles[0], option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write("".join(orjson.dumps(b).decode() + "\n" for b in bundles))
    prefix = f"{len(bundles)} messages; " if len(bundles) > 1 else ""
    typer.echo(prefix + mapped.report.summary(), err=True)
    if strict and mapped.report.lost:
        raise typer.Exit(3)


def _mapping_for(channel: str | None, config: Path | None) -> Mapping:
    """The mapping `simpul map` uses: the channel's, or the built-in one; either way with the
    engine's default_timezone from the settings file when there is one."""
    settings = settings_from(config)
    mapping_spec: Any = "v2_to_fhir"
    base_dir = Path.cwd()
    if channel:
        loaded, findings = load_channels([settings.channels_path()])
        match = [item for item in loaded if item.channel.name == channel]
        if not match:
            problems = f" ({len(findings)} invalid channel file(s))" if findings else ""
            fail(f"simpul map: no channel named '{channel}'{problems}", 2)
        mapping_spec, base_dir = match[0].channel.mapping, match[0].path.parent
    return load_mapping(effective_mapping_spec(mapping_spec, settings.default_timezone), base_dir=base_dir)


def diff(edited: Annotated[Path, typer.Argument(help="The edited channel file (not yet live).")],
         channel: Annotated[Optional[str], typer.Option(help="Running channel to compare with "
                                                        "(default: the edited file's channel name).")] = None,
         last: Annotated[int, typer.Option(min=1, max=100000, help="How many of the channel's latest "
                                           "stored messages to run.")] = 50,
         folder: Annotated[Optional[Path], typer.Option(help="Run the .hl7 files of this folder instead "
                                                        "of stored messages.")] = None,
         config: ConfigOption = None) -> None:
    """Show what an edited channel would change in the FHIR output: the channel's last N stored
    messages (or a folder of files) mapped with the running and the edited mapping, compared
    resource by resource and field by field. Exit 0: no change, 1: changes."""
    settings = settings_from(config)
    edited_loaded, findings = load_channels([edited])
    if findings or not edited_loaded:
        fail("\n".join(str(f) for f in findings) or f"simpul diff: {edited}: no channel in it", 2)
    name = channel or edited_loaded[0].channel.name
    running_loaded, _ = load_channels([settings.channels_path()])
    match = [item for item in running_loaded if item.channel.name == name]
    if not match:
        fail(f"simpul diff: no running channel named '{name}' in {settings.channels_path()}", 2)
    try:
        running = ChannelRuntime(match[0].channel, match[0].path, default_timezone=settings.default_timezone)
        changed = ChannelRuntime(edited_loaded[0].channel, edited_loaded[0].path,
                                 default_timezone=settings.default_timezone)
    except ConfigError as exc:
        fail(f"simpul diff: {exc}", 2)
    if folder:
        messages, refused = folder_messages(folder)
        for line in refused:
            typer.echo(f"simpul diff: {line}", err=True)
    else:
        messages = stored_messages(settings, running, last)
    if not messages:
        fail("simpul diff: no messages to compare" + ("" if folder else f" (none stored for channel '{name}')"), 2)
    report = diff_messages(running.mapping.map, changed.mapping.map, messages)
    sys.stdout.write(str(report) + "\n")
    raise typer.Exit(1 if report.changed else 0)


def conformance(corpus: Annotated[Path, typer.Argument(help="Folder of .hl7 files with reference outputs.")]) -> None:
    """Map every message of a corpus and compare with the reference FHIR outputs."""
    raise typer.Exit(conformance_report.main([str(corpus)]) or 0)
