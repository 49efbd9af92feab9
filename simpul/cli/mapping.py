"""`simpul map` (one message to FHIR) and `simpul conformance` (a whole corpus)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer

from simpul.cli.common import ConfigOption, fail, settings_from
from simpul.engine.config.channels import load_channels
from simpul.engine.message_files import read_message_file
from simpul.mappings import conformance as conformance_report
from simpul.mappings import load_mapping
from simpul.v2 import read_message
from simpul.errors import SimpulError


def map_message(file: Annotated[Path, typer.Argument(help="One HL7v2 message file.")],
                channel: Annotated[Optional[str], typer.Option(help="Use this channel's mapping.")] = None,
                config: ConfigOption = None) -> None:
    """Map one HL7v2 message to FHIR and print the Bundle (JSON) on stdout."""
    try:
        mapping_spec: Any = "v2_to_fhir"
        base_dir = Path.cwd()
        if channel:
            settings = settings_from(config)
            loaded, findings = load_channels([settings.channels_path()])
            match = [item for item in loaded if item.channel.name == channel]
            if not match:
                problems = f" ({len(findings)} invalid channel file(s))" if findings else ""
                fail(f"simpul map: no channel named '{channel}'{problems}", 2)
            mapping_spec, base_dir = match[0].channel.mapping, match[0].path.parent
        try:
            messages = read_message_file(file)
        except OSError as exc:
            fail(f"simpul map: {file}: {exc.strerror}", 2)
        # No message in the file: the reader refuses the empty text with the listener's reason.
        text = read_message(messages[0] if messages else b"").text
        bundle = load_mapping(mapping_spec, base_dir=base_dir).map(text)
    except SimpulError as exc:
        fail(f"simpul map: {file}: {exc}", 2)
    sys.stdout.write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode() + "\n")


def conformance(corpus: Annotated[Path, typer.Argument(help="Folder of .hl7 files with reference outputs.")]) -> None:
    """Map every message of a corpus and compare with the reference FHIR outputs."""
    raise typer.Exit(conformance_report.main([str(corpus)]) or 0)
