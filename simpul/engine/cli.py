"""The `simpul` command: run, validate, map, send, messages search, migrate, conformance.

Every user error ends with a one-line message and a non-zero exit code, never a traceback
(set SIMPUL_DEBUG=1 to see one for a genuine bug).
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer

from simpul.engine.channel_runtime import ChannelRuntime, effective_mapping_spec
from simpul.engine.config.channels import load_channels
from simpul.engine.diff import stored_messages
from simpul.errors import ConfigError, SimpulError, StoreError
from simpul.mappings import conformance as conformance_report
from simpul.mappings import load_mapping
from simpul.mappings.diff import diff_messages
from simpul.mappings.files import folder_messages, map_file
from simpul.mappings.loader import Mapping

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simpul: HL7v2/FHIR integration engine.")
messages_app = typer.Typer(no_args_is_help=True, help="Find stored messages.")
app.add_typer(messages_app, name="messages")
from simpul.dead_letters.cli import archive_app, dead_letters_app, destinations_app  # noqa: E402
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(destinations_app, name="destinations")
app.add_typer(archive_app, name="archive")

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="Engine settings file "
                                                      "(default: config/simpul.yaml when present).")]


def _settings(config: Path | None) -> Any:
    from simpul.engine.config.settings import load_settings

    if config is None:
        default = Path("config/simpul.yaml")
        config = default if default.exists() else None
    elif not config.exists():
        raise ConfigError(f"{config}: no such settings file")
    return load_settings(config)


def _fail(message: str, code: int) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the engine: MLLP listeners, processing, delivery, HTTP (/healthz, /metrics)."""
    from simpul.engine.logs import configure_logging
    from simpul.app import build_engine

    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail("\n".join(exc.findings), 2)
    site = settings.docs_site_path()
    if site is not None and not (site / "index.html").is_file():
        _fail(f"simpul: refusing to start: http.docs_site: {site} holds no built site (run `mkdocs build` first)", 2)
    configure_logging(settings.log.level, settings.log.format)

    async def main() -> None:
        import signal

        engine = build_engine(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await engine.start()
        try:
            await stop.wait()
        finally:
            await engine.stop()

    try:
        asyncio.run(main())
    except ConfigError as exc:
        _fail("simpul: refusing to start:\n" + "\n".join(exc.findings), 2)
    except StoreError as exc:       # e.g. the store cannot commit durably
        _fail(f"simpul: refusing to start: {exc}", 2)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _fail(f"simpul: cannot start: {exc.strerror or exc}", 2)


@app.command()
def validate(paths: Annotated[Optional[list[Path]], typer.Argument(help="Channel files or folders "
                                                                   "(default: the channels folder).")] = None,
             config: ConfigOption = None) -> None:
    """Check channel files; print `file:line:col key: reason` per finding; exit 1 on any."""
    from simpul.engine.config.channels import load_channels
    from simpul.mappings import load_mapping

    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail("\n".join(exc.findings), 1)
    targets = paths or [settings.channels_path()]
    loaded, findings = load_channels(targets)
    for item in loaded:
        try:
            load_mapping(item.channel.mapping, base_dir=item.path.parent)
        except ConfigError as exc:
            findings.append(item.document.finding(("mapping",), str(exc)))
    for finding in findings:
        typer.echo(str(finding))
    if findings:
        raise typer.Exit(1)
    typer.echo(f"ok: {len(loaded)} channel(s) valid", err=True)


@app.command("map")
def map_command(file: Annotated[Path, typer.Argument(help="An HL7v2 file: one message, several, or an HL7 batch.")],
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
            _fail(f"simpul map: {file}: {exc.strerror}", 2)
        mapped = map_file(data, mapping)
    except SimpulError as exc:
        _fail(f"simpul map: {file}: {exc}", 2)
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
    settings = _settings(config)
    mapping_spec: Any = "v2_to_fhir"
    base_dir = Path.cwd()
    if channel:
        loaded, findings = load_channels([settings.channels_path()])
        match = [item for item in loaded if item.channel.name == channel]
        if not match:
            problems = f" ({len(findings)} invalid channel file(s))" if findings else ""
            _fail(f"simpul map: no channel named '{channel}'{problems}", 2)
        mapping_spec, base_dir = match[0].channel.mapping, match[0].path.parent
    return load_mapping(effective_mapping_spec(mapping_spec, settings.default_timezone), base_dir=base_dir)


@app.command()
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
    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail("\n".join(exc.findings), 2)
    edited_loaded, findings = load_channels([edited])
    if findings or not edited_loaded:
        _fail("\n".join(str(f) for f in findings) or f"simpul diff: {edited}: no channel in it", 2)
    name = channel or edited_loaded[0].channel.name
    running_loaded, _ = load_channels([settings.channels_path()])
    match = [item for item in running_loaded if item.channel.name == name]
    if not match:
        _fail(f"simpul diff: no running channel named '{name}' in {settings.channels_path()}", 2)
    try:
        running = ChannelRuntime(match[0].channel, match[0].path, default_timezone=settings.default_timezone)
        changed = ChannelRuntime(edited_loaded[0].channel, edited_loaded[0].path,
                                 default_timezone=settings.default_timezone)
    except ConfigError as exc:
        _fail(f"simpul diff: {exc}", 2)
    if folder:
        messages, refused = folder_messages(folder)
        for line in refused:
            typer.echo(f"simpul diff: {line}", err=True)
    else:
        messages = stored_messages(settings, running, last)
    if not messages:
        _fail("simpul diff: no messages to compare" + ("" if folder else f" (none stored for channel '{name}')"), 2)
    report = diff_messages(running.mapping.map, changed.mapping.map, messages)
    sys.stdout.write(str(report) + "\n")
    raise typer.Exit(1 if report.changed else 0)


@app.command()
def send(target: Annotated[str, typer.Argument(help="HOST:PORT of an MLLP listener.")],
         files: Annotated[list[Path], typer.Argument(help="HL7v2 message files (several messages per file allowed).")],
         timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK.")] = 30.0,
         tls: Annotated[bool, typer.Option(help="Use TLS.")] = False,
         ca: Annotated[Optional[Path], typer.Option(help="CA file to verify the listener.")] = None,
         cert: Annotated[Optional[Path], typer.Option(help="Client certificate.")] = None,
         key: Annotated[Optional[Path], typer.Option(help="Client key.")] = None,
         quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False) -> None:
    """Send HL7v2 files over MLLP, one message at a time, and summarise the ACKs."""
    from simpul.engine.send import run_send

    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        _fail(f"simpul send: '{target}' is not HOST:PORT", 2)
    code = asyncio.run(run_send(host, int(port_text), files, timeout=timeout, tls=tls or ca is not None, ca=ca,
                                cert=cert, key=key, quiet=quiet))
    raise typer.Exit(code)


def _when(value: str | None) -> float | None:
    """ISO 8601 (2026-11-26T08:00, naive = UTC) or a duration back from now (30m, 2h, 7d)."""
    if value is None:
        return None
    from simpul.config_types import parse_duration
    try:
        return time.time() - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"'{value}' is neither an ISO date/time nor a duration such as 2h", 2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@messages_app.command("search")
def messages_search(
        patient_id: Annotated[Optional[str], typer.Option("--patient-id", "--mrn", help="PID-3 identifier.")] = None,
        control_id: Annotated[Optional[str], typer.Option(help="MSH-10.")] = None,
        message_type: Annotated[Optional[str], typer.Option("--type", help="MSH-9, e.g. ORU^R01 or ADT^*.")] = None,
        status: Annotated[Optional[str], typer.Option(help="received, routed, unrouted, rejected.")] = None,
        accession: Annotated[Optional[str], typer.Option(help="Accession number.")] = None,
        visit: Annotated[Optional[str], typer.Option(help="Visit number (PV1-19).")] = None,
        since: Annotated[Optional[str], typer.Option(help="From (ISO time or e.g. 2h ago).")] = None,
        until: Annotated[Optional[str], typer.Option(help="Until (ISO time or a duration ago).")] = None,
        limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
        config: ConfigOption = None) -> None:
    """Find messages by patient, control id, type, status and time window (newest first)."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from simpul.engine.search import MessageQuery, search_messages
    from simpul.store.database import open_database

    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail("\n".join(exc.findings), 2)
    query = MessageQuery(patient_id=patient_id, control_id=control_id, message_type=message_type, status=status,
                         accession_number=accession, visit_number=visit, since=_when(since), until=_when(until),
                         limit=limit)
    engine = open_database(settings.database_url(), sqlite_synchronous=settings.database.sqlite_synchronous)
    with engine.connect() as connection:
        rows = search_messages(connection, query)
    engine.dispose()
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    table = Table(title=f"{len(rows)} message(s)")
    for column in ("id", "received (UTC)", "type", "control id", "sender", "patient", "status", "ack",
                   "deliveries"):
        table.add_column(column)
    for row in rows:
        received = datetime.fromtimestamp(row["received_at"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        summary = ", ".join(f"{d['channel']}/{d['destination']}:{d['status']}" for d in row["deliveries"])
        table.add_row(str(row["id"]), received, row["message_type"], row["control_id"],
                      row["sending_application"].split("^")[0], row["patient_id"], row["status"], row["ack_code"],
                      summary)
    Console().print(table)


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the store's schema (simpul run does this too)."""
    from simpul.store.database import open_database

    settings = _settings(config)
    open_database(settings.database_url()).dispose()
    typer.echo("store schema is up to date", err=True)


@app.command()
def docs() -> None:
    """Print the channel YAML reference (Markdown), generated from the models."""
    from simpul.engine.config.reference import channel_reference

    sys.stdout.write(channel_reference())


@app.command()
def conformance(corpus: Annotated[Path, typer.Argument(help="Folder of .hl7 files with reference outputs.")]) -> None:
    """Map every message of a corpus and compare with the reference FHIR outputs."""
    raise typer.Exit(conformance_report.main([str(corpus)]) or 0)


def main() -> None:
    try:
        app()
    except SimpulError as exc:
        findings = getattr(exc, "findings", None)
        typer.echo("\n".join(findings) if findings else f"simpul: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: say what, not a wall of frames
        if os.environ.get("SIMPUL_DEBUG"):
            raise
        typer.echo(f"simpul: internal error: {type(exc).__name__}: {exc} (SIMPUL_DEBUG=1 for details)", err=True)
        sys.exit(70)
