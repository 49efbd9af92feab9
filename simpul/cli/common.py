"""What every command group of the `simpul` CLI shares: option types, settings, time parsing,
output helpers and the store session. Public on purpose, so a command module never reaches into
another command module's private names.

Conventions every command keeps: results go to stdout, problems and progress to stderr; a user
error ends with one line on stderr and a non-zero exit (1 = refused, 2 = bad settings or usage),
never a traceback.
"""
from __future__ import annotations

# fail, format_time and print_json live in output.py (light: commands that need no settings or
# store, such as `simpul send`, import only that); they are re-exported here for the others.

import getpass
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from sqlalchemy import Connection

from simpul.dead_letters.audit import Actor
from simpul.dead_letters.query import DeadLetterFilter
from simpul.engine.channel_runtime import ChannelRuntime
from simpul.engine.config.channels import load_channels
from simpul.config_types import parse_duration
from simpul.engine.config.settings import Settings, load_settings
from simpul.store.database import open_database
from simpul.cli.output import fail as fail
from simpul.cli.output import format_time as format_time
from simpul.cli.output import print_json as print_json
from simpul.errors import ConfigError, OperationRefused, SimpulError

DEFAULT_SETTINGS = Path("config/simpul.yaml")

# ---- option and argument types shared by the command modules --------------------------------
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="Engine settings file "
                                                      "(default: config/simpul.yaml when present).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]
ActorOption = Annotated[Optional[str], typer.Option(help="Who does this (default: the OS user).")]
ReasonOption = Annotated[str, typer.Option(help="Why: kept in the audit trail. Required.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask (for scripts).")]
ChannelOption = Annotated[Optional[str], typer.Option(help="Channel name.")]
DestinationOption = Annotated[Optional[str], typer.Option(help="Destination label.")]
PatientOption = Annotated[Optional[str], typer.Option("--patient-id", "--mrn", help="PID-3 identifier.")]
ControlIdOption = Annotated[Optional[str], typer.Option(help="MSH-10.")]
TypeOption = Annotated[Optional[str], typer.Option("--type", help="MSH-9, e.g. ORU^R01 or ADT^*.")]


def settings_from(config: Path | None) -> Settings:
    """The engine settings of `-c FILE`, else config/simpul.yaml when present, else the defaults."""
    if config is None:
        config = DEFAULT_SETTINGS if DEFAULT_SETTINGS.exists() else None
    elif not config.exists():
        raise ConfigError(f"{config}: no such settings file")
    return load_settings(config)


def parse_when(value: str | None) -> float | None:
    """ISO 8601 (2026-11-26T08:00, naive = UTC) or a duration back from now (30m, 2h, 7d)."""
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"'{value}' is neither an ISO date/time nor a duration such as 2h", 2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def actor_or_user(actor: str | None) -> Actor:
    """Who runs this command, for the audit trail: --actor, else the OS user. The role is `cli`
    (a shell on the engine's host with the store's settings) and the address names the host."""
    if not actor:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):
            actor = "unknown"
    return Actor(actor, role="cli", client=f"cli@{socket.gethostname()}"[:64])


def confirm(prompt: str, yes: bool) -> None:
    """Ask on a terminal; without one, refuse unless --yes was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail("not confirmed: run again with --yes (after reading the preview above)", 1)
    if not typer.confirm(prompt, default=False):
        fail("cancelled", 1)


def dead_letter_filter(ids: list[int] | None = None, *, since: str | None = None, until: str | None = None,
                       **fields: Any) -> DeadLetterFilter:
    """A dead-letter filter from CLI options (times as `parse_when` reads them)."""
    return DeadLetterFilter(ids=list(ids or []), since=parse_when(since), until=parse_when(until), **fields)


def split_target(target: str) -> tuple[str, str]:
    """CHANNEL/DESTINATION -> (channel, destination)."""
    channel, _, destination = target.partition("/")
    if not channel or not destination:
        fail(f"'{target}' is not CHANNEL/DESTINATION (e.g. lab-results/fhir)")
    return channel, destination


class StoreSession:
    """The store and the channels as the settings file names them, for commands that work on the
    store directly (so they work while the engine or its HTTP API is down)."""

    def __init__(self, config: Path | None) -> None:
        self.settings = settings_from(config)
        self.db = open_database(self.settings.database_url(),
                                sqlite_synchronous=self.settings.database.sqlite_synchronous,
                                busy_timeout_ms=int(self.settings.database.busy_timeout * 1000))
        self._channels: dict[str, ChannelRuntime] | None = None

    @property
    def channels(self) -> dict[str, ChannelRuntime]:
        """Channel runtimes (mappings loaded) for replay and edit; invalid files are skipped with a note."""
        if self._channels is None:
            loaded, findings = load_channels([self.settings.channels_path()], relative_to=self.settings.base_dir)
            for finding in findings:
                typer.echo(f"note: {finding}", err=True)
            self._channels = {item.channel.name: ChannelRuntime(
                item.channel, item.path, default_timezone=self.settings.default_timezone) for item in loaded}
        return self._channels

    def known_destinations(self) -> set[tuple[str, str]]:
        return {(name, d.label) for name, runtime in self.channels.items() for d in runtime.channel.destinations}

    def read(self, fn: Callable[[Connection], Any]) -> Any:
        with self.db.connect() as connection:
            return fn(connection)

    def write(self, fn: Callable[[Connection], Any]) -> Any:
        with self.db.begin() as connection:
            return fn(connection)

    def close(self) -> None:
        self.db.dispose()


@contextmanager
def store_session(config: Path | None) -> Iterator[StoreSession]:
    """A StoreSession whose refusals end the command as one line (exit 1; other errors exit 2)."""
    try:
        session = StoreSession(config)
    except ConfigError as exc:
        fail("\n".join(exc.findings))
    try:
        yield session
    except OperationRefused as exc:
        fail(f"refused: {exc}", 1)
    except SimpulError as exc:
        fail(f"simpul: {exc}")
    finally:
        session.close()
