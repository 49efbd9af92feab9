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

import typer

from simpul.errors import ConfigError, SimpulError

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
    from simpul.engine.runtime import Engine

    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail("\n".join(exc.findings), 2)
    configure_logging(settings.log.level, settings.log.format)

    async def main() -> None:
        import signal

        engine = Engine(settings)
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
    import orjson

    from simpul.engine.charset import decode_message
    from simpul.mappings.batch import split_file
    from simpul.mappings.report import merge_reports
    from simpul.mllp.header import read_header

    try:
        mapping = _mapping_for(channel, config)
        try:
            split = split_file(file.read_bytes())
        except OSError as exc:
            _fail(f"simpul map: {file}: {exc.strerror}", 2)
        if split.problems:
            _fail(f"simpul map: {file}: {split.problems[0]}; nothing mapped", 2)
        if not split.messages:
            _fail(f"simpul map: {file}: no HL7v2 message found (expected a line starting with MSH)", 2)
        bundles, reports = [], []
        for n, raw in enumerate(split.messages, 1):
            where = f" message {n} of {len(split.messages)}:" if len(split.messages) > 1 else ""
            try:
                header = read_header(raw)
                text, _ = decode_message(raw, header.charset)
                bundle, report = mapping.map_with_report(text)
            except SimpulError as exc:
                _fail(f"simpul map: {file}:{where} {exc}; nothing mapped", 2)
            bundles.append(bundle)
            reports.append(report)
    except SimpulError as exc:
        _fail(f"simpul map: {file}: {exc}", 2)
    if len(bundles) == 1:
        sys.stdout.write(orjson.dumps(bundles[0], option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write("".join(orjson.dumps(b).decode() + "\n" for b in bundles))
    summary = merge_reports(reports)
    prefix = f"{len(bundles)} messages; " if len(bundles) > 1 else ""
    typer.echo(prefix + summary.summary(), err=True)
    if strict and summary.lost:
        raise typer.Exit(3)


def _mapping_for(channel: str | None, config: Path | None) -> Any:
    """The mapping `simpul map` and `simpul diff` use: the channel's, or the built-in one; either way
    with the engine's default_timezone from the settings file when there is one."""
    from simpul.engine.channel_runtime import effective_mapping_spec
    from simpul.mappings import load_mapping

    settings = _settings(config)
    mapping_spec: Any = "v2_to_fhir"
    base_dir = Path.cwd()
    if channel:
        from simpul.engine.config.channels import load_channels
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
    from simpul.engine.channel_runtime import ChannelRuntime
    from simpul.engine.config.channels import load_channels
    from simpul.engine.diff import diff_messages

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
    messages = _diff_inputs_from_folder(folder) if folder else _diff_inputs_from_store(settings, running, last)
    if not messages:
        _fail("simpul diff: no messages to compare" + ("" if folder else f" (none stored for channel '{name}')"), 2)
    report = diff_messages(running.mapping.map, changed.mapping.map, messages)
    sys.stdout.write(str(report) + "\n")
    raise typer.Exit(1 if report.changed else 0)


def _diff_inputs_from_folder(folder: Path) -> list[tuple[str, str]]:
    from simpul.engine.charset import decode_message
    from simpul.mappings.batch import split_file
    from simpul.mllp.header import read_header

    out = []
    for path in sorted(folder.glob("*.hl7")):
        messages = split_file(path.read_bytes()).messages
        for n, raw in enumerate(messages, 1):
            label = path.name if len(messages) == 1 else f"{path.name} message {n}"
            try:
                text = decode_message(raw, read_header(raw).charset)[0]
            except SimpulError:
                text = raw.decode("utf-8", errors="replace")
            out.append((label, text))
    return out


def _diff_inputs_from_store(settings: Any, runtime: Any, last: int) -> list[tuple[str, str]]:
    """The channel's latest `last` stored messages (those its filter takes), oldest first."""
    from sqlalchemy import select

    from simpul.engine.processor import MESSAGE_COLUMNS, message_fields
    from simpul.engine.store.database import open_database
    from simpul.engine.store.schema import messages

    engine = open_database(settings.database_url(), sqlite_synchronous=settings.database.sqlite_synchronous)
    out: list[tuple[str, str]] = []
    try:
        with engine.connect() as connection:
            query = select(*MESSAGE_COLUMNS).where(messages.c.status.in_(("routed", "unrouted", "received"))) \
                .order_by(messages.c.id.desc()).execution_options(yield_per=500)
            for row in connection.execute(query):
                if runtime.accepts(message_fields(row)):
                    text = row.raw.decode(row.charset or "utf-8", errors="replace").lstrip("\ufeff")
                    out.append((f"message {row.id} {row.message_type} {row.control_id}", text))
                    if len(out) >= last:
                        break
    finally:
        engine.dispose()
    return out[::-1]


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
    from simpul.engine.config.durations import parse_duration
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
    from simpul.engine.store.database import open_database

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
    from simpul.engine.store.database import open_database

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
    from simpul.engine.charset import decode_message
    from simpul.mappings import conformance as report
    from simpul.mllp.header import read_header

    def decode(raw: bytes) -> str:
        # As on the wire: MSH-18 decides; a file whose bytes do not fit it is read as UTF-8 with
        # replacement characters, so the report still says what the map makes of it.
        try:
            return decode_message(raw, read_header(raw).charset)[0]
        except SimpulError:
            return raw.decode("utf-8", errors="replace")

    raise typer.Exit(report.main([str(corpus)], decode=decode) or 0)


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
