"""`simpul validate` and `simpul docs`: channel files checked, and their reference printed."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from simpul.billing.tariffs import read_tariffs
from simpul.cli.common import ConfigOption, fail, settings_from
from simpul.engine.config.settings import Settings
from simpul.engine.config.channels import load_channels
from simpul.engine.config.reference import channel_reference
from simpul.errors import ConfigError
from simpul.mappings import load_mapping


def validate(paths: Annotated[Optional[list[Path]], typer.Argument(help="Channel files or folders "
                                                                   "(default: the channels folder).")] = None,
             config: ConfigOption = None) -> None:
    """Check channel files (and the tariff table); print `file:line:col key: reason` per finding; exit 1 on any.

    The result ("ok: N channel(s) valid") goes to stdout, findings to stderr.
    """
    try:
        settings = settings_from(config)
    except ConfigError as exc:
        fail("\n".join(exc.findings), 1)
    targets = paths or [settings.channels_path()]
    loaded, findings = load_channels(targets)
    for item in loaded:
        try:
            load_mapping(item.channel.mapping, base_dir=item.path.parent)
        except ConfigError as exc:
            findings.append(item.document.finding(("mapping",), str(exc)))
    for finding in findings:
        typer.echo(str(finding), err=True)
    tariff_findings, tariff_rows = _check_tariffs(settings)
    if findings or tariff_findings:
        raise typer.Exit(1)
    typer.echo(f"ok: {len(loaded)} channel(s) valid")
    if tariff_rows is not None:
        typer.echo(f"ok: {tariff_rows} tariff row(s) valid ({settings.tariffs_path()})")


def _check_tariffs(settings: Settings) -> tuple[int, int | None]:
    """The tariff table, when billing is on or the file exists: findings to stderr as `file:line column: reason`."""
    path = settings.tariffs_path()
    if not settings.billing.enabled and not path.exists():
        return 0, None
    try:
        rows, findings = read_tariffs(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        return 1, None
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path   # as channel findings are
    for finding in findings:
        typer.echo(finding.render(shown), err=True)
    return len(findings), len(rows)


def docs() -> None:
    """Print the channel YAML reference (Markdown), generated from the models."""
    sys.stdout.write(channel_reference())
