"""`simpul dead-letters ...` and `simpul destinations ...`: on-call work from a shell.

These commands talk to the store named in the engine settings (`-c config/simpul.yaml`), not
to a running engine: a replay inserts delivery rows and a pause writes a control row, and the
running engine's workers pick both up on their next poll. So they work when the HTTP API is
down, and the engine need not be running at all. Writes made here and through the HTTP API
end in the same audit trail; `--actor` defaults to the OS user.
"""
from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer

from simpul.errors import ConfigError, OperationRefused, SimpulError
from simpul.v2 import split_segments

dead_letters_app = typer.Typer(no_args_is_help=True, help="Find, explain, fix and replay failed messages.")
destinations_app = typer.Typer(no_args_is_help=True, help="Pause, resume and inspect destinations.")

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="Engine settings file "
                                                      "(default: config/simpul.yaml when present).")]
ActorOption = Annotated[Optional[str], typer.Option(help="Who does this (default: the OS user).")]
ReasonOption = Annotated[str, typer.Option(help="Why: kept in the audit trail. Required.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask (for scripts).")]
DeadLetterIdArg = Annotated[int, typer.Argument(help="Dead letter id.")]
TargetArg = Annotated[str, typer.Argument(help="CHANNEL/DESTINATION")]

# Filter options shared by list, counts, replay and discard.
ChannelOpt = Annotated[Optional[str], typer.Option(help="Channel name.")]
DestinationOpt = Annotated[Optional[str], typer.Option(help="Destination label.")]
StatusOpt = Annotated[Optional[str], typer.Option(help="open, replayed or discarded.")]
ErrorOpt = Annotated[Optional[str], typer.Option(help="Text in the error class or message.")]
PatientOpt = Annotated[Optional[str], typer.Option("--patient-id", "--mrn", help="PID-3 identifier.")]
ControlOpt = Annotated[Optional[str], typer.Option(help="MSH-10.")]
TypeOpt = Annotated[Optional[str], typer.Option("--type", help="MSH-9, e.g. ORU^R01 or ADT^*.")]
SinceOpt = Annotated[Optional[str], typer.Option(help="Dead-lettered from (ISO time or e.g. 2h ago).")]
UntilOpt = Annotated[Optional[str], typer.Option(help="Dead-lettered before (ISO time or a duration ago).")]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class StoreSession:
    """The store and the channels as loaded from the settings file."""

    def __init__(self, config: Path | None) -> None:
        from simpul.engine.cli import _settings
        from simpul.store.database import open_database

        self.settings = _settings(config)
        self.db = open_database(self.settings.database_url(),
                                sqlite_synchronous=self.settings.database.sqlite_synchronous,
                                busy_timeout_ms=int(self.settings.database.busy_timeout * 1000))
        self._channels: dict[str, Any] | None = None

    @property
    def channels(self) -> dict[str, Any]:
        """Channel runtimes (mappings loaded) for replay and edit; invalid files are skipped with a note."""
        if self._channels is None:
            from simpul.engine.channel_runtime import ChannelRuntime
            from simpul.engine.config.channels import load_channels

            loaded, findings = load_channels([self.settings.channels_path()], relative_to=self.settings.base_dir)
            for finding in findings:
                typer.echo(f"note: {finding}", err=True)
            self._channels = {item.channel.name: ChannelRuntime(
                item.channel, item.path, default_timezone=self.settings.default_timezone) for item in loaded}
        return self._channels

    def known_destinations(self) -> set[tuple[str, str]]:
        return {(name, d.label) for name, runtime in self.channels.items() for d in runtime.channel.destinations}

    def read(self, fn: Callable[[Any], Any]) -> Any:
        with self.db.connect() as connection:
            return fn(connection)

    def write(self, fn: Callable[[Any], Any]) -> Any:
        with self.db.begin() as connection:
            return fn(connection)

    def close(self) -> None:
        self.db.dispose()


@contextmanager
def _session(config: Path | None) -> Iterator[StoreSession]:
    try:
        session = StoreSession(config)
    except ConfigError as exc:
        _fail("\n".join(exc.findings))
    try:
        yield session
    except OperationRefused as exc:
        _fail(f"refused: {exc}", 1)
    except SimpulError as exc:
        _fail(f"simpul: {exc}")
    finally:
        session.close()


def _filter(ids: list[int] | None = None, **options: Any) -> Any:
    from simpul.dead_letters.query import DeadLetterFilter
    from simpul.engine.cli import _when

    since, until = options.pop("since", None), options.pop("until", None)
    return DeadLetterFilter(ids=list(ids or []), since=_when(since), until=_when(until), **options)


def _time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _confirm(prompt: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        _fail("not confirmed: run again with --yes (after reading the preview above)", 1)
    if not typer.confirm(prompt, default=False):
        _fail("cancelled", 1)


# ---- dead-letters ---------------------------------------------------------------------------
@dead_letters_app.command("list")
def list_command(channel: ChannelOpt = None, destination: DestinationOpt = None, status: StatusOpt = None,
                 error: ErrorOpt = None, patient_id: PatientOpt = None, control_id: ControlOpt = None,
                 message_type: TypeOpt = None, since: SinceOpt = None, until: UntilOpt = None,
                 limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
                 offset: Annotated[int, typer.Option(min=0)] = 0,
                 as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List dead letters, newest first (use --offset to page)."""
    from rich.console import Console
    from rich.table import Table

    from simpul.dead_letters.query import search_dead_letters

    with _session(config) as session:
        query = _filter(channel=channel, destination=destination, status=status, error=error,
                        patient_id=patient_id, control_id=control_id, message_type=message_type,
                        since=since, until=until)
        page = session.read(lambda c: search_dead_letters(c, query, limit=limit, offset=offset))
    if as_json:
        _json(page)
        return
    table = Table(title=f"{len(page['items'])} of {page['total']} dead letter(s)")
    for column in ("id", "at (UTC)", "channel/destination", "stage", "type", "control id", "patient", "error",
                   "tries", "status"):
        table.add_column(column)
    for row in page["items"]:
        table.add_row(str(row["id"]), _time(row["created_at"]), f"{row['channel']}/{row['destination'] or '-'}",
                      row["stage"], row["message_type"], row["control_id"], row["patient_id"],
                      f"{row['error_class']}: {row['error'][:60]}", str(row["attempts"]), row["status"])
    Console().print(table)


@dead_letters_app.command("counts")
def counts_command(by: Annotated[str, typer.Option(help="Comma list of channel, destination, error_class, "
                                                        "stage, status, message_type.")] = "channel,destination",
                   channel: ChannelOpt = None, destination: DestinationOpt = None, status: StatusOpt = "open",
                   error: ErrorOpt = None, since: SinceOpt = None, until: UntilOpt = None,
                   as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Count dead letters per channel/destination/error (open ones by default)."""
    from simpul.dead_letters.query import count_dead_letters

    with _session(config) as session:
        query = _filter(channel=channel, destination=destination, status=status, error=error, since=since,
                        until=until)
        rows = session.read(lambda c: count_dead_letters(c, query, [b.strip() for b in by.split(",") if b.strip()]))
    if as_json:
        _json(rows)
        return
    for row in rows:
        typer.echo("  ".join(f"{k}={v}" for k, v in row.items() if k != "count") + f"  count={row['count']}")


@dead_letters_app.command("show")
def show_command(dead_letter_id: DeadLetterIdArg,
                 as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Everything about one entry: why it failed, every attempt and response, edits, replays, the bytes."""
    from simpul.dead_letters.query import show_dead_letter

    with _session(config) as session:
        entry = session.read(lambda c: show_dead_letter(c, dead_letter_id))
    if as_json:
        _json(entry)
        return
    typer.echo(f"dead letter {entry['id']}  [{entry['status']}]  {entry['channel']}/{entry['destination'] or '-'}"
               f"  stage={entry['stage']}")
    typer.echo(f"  at {_time(entry['created_at'])} UTC  type={entry['message_type']}  control_id={entry['control_id']}"
               f"  patient={entry['patient_id']}  visit={entry['visit_number']}  accession={entry['accession_number']}")
    typer.echo(f"  error: {entry['error_class']}: {entry['error']}")
    if entry["resolved_at"]:
        typer.echo(f"  {entry['status']} by {entry['resolved_by']} at {_time(entry['resolved_at'])}: "
                   f"{entry['resolution']}")
    typer.echo(f"  attempts ({len(entry['attempts'])}):")
    for attempt in entry["attempts"]:
        typer.echo(f"    #{attempt['attempt']} {_time(attempt['started_at'])} {attempt['outcome']}"
                   f" {attempt['error_class'] or ''} {attempt['error'] or ''}".rstrip())
        if attempt["response"]:
            typer.echo(f"       response: {attempt['response'][:500]}")
    for edit in entry["edits"]:
        typer.echo(f"  edit {edit['id']} by {edit['actor']} at {_time(edit['at'])}: {edit['reason']}")
    for replay in entry["replays"]:
        typer.echo(f"  replay -> delivery {replay['delivery_id']} ({replay['destination']}): {replay['status']}"
                   f" after {replay['attempts']} attempt(s)")
    typer.echo("  original message:")
    for line in split_segments(entry["raw"] or ""):
        if line:
            typer.echo(f"    {line}")


def _print_preview(preview: dict[str, Any], dry_run: bool) -> None:
    typer.echo(f"{'DRY RUN: ' if dry_run else ''}replay would queue {preview['deliveries']} delivery(ies) for "
               f"{preview['dead_letters']} dead letter(s) (cap {preview['cap']})", err=True)
    typer.echo(f"  patients ({len(preview['patients'])}): {', '.join(preview['patients'][:20])}"
               + (" ..." if len(preview["patients"]) > 20 else ""), err=True)
    for destination, count in preview["destinations"].items():
        typer.echo(f"  {destination}: {count}", err=True)
    typer.echo("  sample:", err=True)
    for item in preview["sample"]:
        typer.echo(f"    #{item['dead_letter_id']} {item['message_type']} {item['control_id']} patient="
                   f"{item['patient_id']} -> {item['channel']}/{item['destination']}"
                   + (" (edited)" if item["edited"] else "") + (f"  PROBLEM: {item['problem']}" if item["problem"]
                                                                 else ""), err=True)
    for item in preview["problems"][:20]:
        typer.echo(f"  will skip #{item['dead_letter_id']}: {item['problem']}", err=True)


def _print_queued(result: Any) -> None:
    typer.echo(f"queued {len(result.delivery_ids)} replay delivery(ies) (audit event {result.audit_event_id})")


@dead_letters_app.command("replay")
def replay_command(ids: Annotated[Optional[list[int]], typer.Argument(help="Dead letter ids (or use filters).")] = None,
                   channel: ChannelOpt = None, destination: DestinationOpt = None, status: StatusOpt = None,
                   error: ErrorOpt = None, patient_id: PatientOpt = None, control_id: ControlOpt = None,
                   message_type: TypeOpt = None, since: SinceOpt = None, until: UntilOpt = None,
                   to: Annotated[Optional[str], typer.Option("--to", help="Send to this destination label of the "
                                                             "channel instead (e.g. a shadow/test endpoint).")] = None,
                   dry_run: Annotated[bool, typer.Option("--dry-run", help="Map and preview; send nothing.")] = False,
                   max_count: Annotated[int, typer.Option("--max", min=1, help="Refuse when more dead letters "
                                                          "match than this.")] = 100,
                   yes: YesOption = False,
                   reason: Annotated[Optional[str], typer.Option(help="Why: kept in the audit trail. Required "
                                                                 "unless --dry-run.")] = None,
                   actor: ActorOption = None, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Replay dead letters: preview first (count, patients, destinations, sample), then confirm.

    Open entries only unless --status or explicit ids are given. Each replay is a new delivery
    linked to the original, with the same payload and idempotency key.
    """
    from simpul.dead_letters.replay import execute_replay, plan_replay

    if not dry_run and not (reason and reason.strip()):
        _fail("refused: a reason is required to replay (--reason)", 1)
    with _session(config) as session:
        query = _filter(ids, channel=channel, destination=destination, status=status, error=error,
                        patient_id=patient_id, control_id=control_id, message_type=message_type, since=since,
                        until=until)
        channels = session.channels
        plan = session.read(lambda c: plan_replay(c, query, channels, to_destination=to, cap=max_count))
        preview = plan.preview()
        if as_json and dry_run:
            _json({"dry_run": True, **preview})
            return
        _print_preview(preview, dry_run)
        if plan.over_cap:
            _fail(f"refused: {plan.matched} dead letters match, above the cap of {max_count}; narrow the filter "
                  f"or raise the cap explicitly with --max {plan.matched}", 1)
        if dry_run:
            return
        _confirm(f"Replay {preview['deliveries']} delivery(ies)?", yes)
        result = session.write(lambda c: execute_replay(c, plan_replay(c, query, channels, to_destination=to,
                                                                       cap=max_count),
                                                        actor=_actor(actor), reason=reason or ""))
    if as_json:
        _json({"audit_event_id": result.audit_event_id, "delivery_ids": result.delivery_ids,
               "skipped": result.skipped})
        return
    _print_queued(result)
    for item in result.skipped:
        typer.echo(f"  skipped #{item['dead_letter_id']}: {item['problem']}", err=True)


@dead_letters_app.command("edit")
def edit_command(dead_letter_id: DeadLetterIdArg,
                 file: Annotated[Path, typer.Option("--file", "-f", help="The corrected HL7v2 message "
                                                    "(LF or CR line ends).")],
                 reason: ReasonOption, actor: ActorOption = None,
                 replay: Annotated[bool, typer.Option(help="Queue the edited message right away.")] = False,
                 yes: YesOption = False,
                 config: ConfigOption = None) -> None:
    """Store a corrected copy beside the original (never over it), optionally replaying it.

    Tip: `simpul dead-letters show ID --json | jq -r .raw > fix.hl7`, edit, then `edit ID -f fix.hl7`.
    """
    from simpul.dead_letters.edits import edit_dead_letter
    from simpul.dead_letters.query import DeadLetterFilter
    from simpul.dead_letters.replay import execute_replay, plan_replay

    try:
        raw = file.read_bytes()
    except OSError as exc:
        _fail(f"simpul: {file}: {exc.strerror}")
    with _session(config) as session:
        channels = session.channels
        result = session.write(lambda c: edit_dead_letter(c, dead_letter_id, raw, actor=_actor(actor), reason=reason,
                                                          channels=channels))
        typer.echo(f"stored edit {result.edit_id} of dead letter {dead_letter_id}"
                   + (" (re-mapped)" if result.mapped else ""))
        if replay:
            query = DeadLetterFilter(ids=[dead_letter_id])
            plan = session.read(lambda c: plan_replay(c, query, channels, cap=1))
            _print_preview(plan.preview(), False)
            _confirm("Replay the edited message?", yes)
            done = session.write(lambda c: execute_replay(c, plan_replay(c, query, channels, cap=1),
                                                          actor=_actor(actor), reason=reason))
            _print_queued(done)


@dead_letters_app.command("discard")
def discard_command(ids: Annotated[Optional[list[int]], typer.Argument(help="Dead letter ids (or filters).")] = None,
                    channel: ChannelOpt = None, destination: DestinationOpt = None, error: ErrorOpt = None,
                    patient_id: PatientOpt = None, control_id: ControlOpt = None, message_type: TypeOpt = None,
                    since: SinceOpt = None, until: UntilOpt = None, reason: ReasonOption = "",
                    max_count: Annotated[int, typer.Option("--max", min=1)] = 100,
                    yes: YesOption = False,
                    actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Close open dead letters without sending. They stay searchable until retention archives them."""
    from simpul.dead_letters.discard import discard_dead_letters
    from simpul.dead_letters.query import search_dead_letters

    if not reason.strip():
        _fail("refused: a reason is required to discard (--reason)", 1)
    with _session(config) as session:
        query = _filter(ids, channel=channel, destination=destination, status="open", error=error,
                        patient_id=patient_id, control_id=control_id, message_type=message_type, since=since,
                        until=until)
        page = session.read(lambda c: search_dead_letters(c, query, limit=5))
        typer.echo(f"discard would close {page['total']} open dead letter(s)", err=True)
        _confirm(f"Discard {page['total']} dead letter(s)?", yes)
        count, _ = session.write(lambda c: discard_dead_letters(c, query, actor=_actor(actor), reason=reason,
                                                                cap=max_count))
    typer.echo(f"discarded {count} dead letter(s)")


@dead_letters_app.command("audit")
def audit_command(action: Annotated[Optional[str], typer.Option(help="e.g. dead_letter.replay or destination.*")] = None,
                  actor: Annotated[Optional[str], typer.Option(help="Only this actor.")] = None,
                  since: SinceOpt = None, limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
                  as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List audit events (replay, edit, discard, pause, resume, archive), newest first. Read-only."""
    from simpul.dead_letters.audit import list_audit
    from simpul.engine.cli import _when

    with _session(config) as session:
        rows = session.read(lambda c: list_audit(c, action=action, actor=actor, since=_when(since), limit=limit))
    if as_json:
        _json(rows)
        return
    for row in rows:
        typer.echo(f"{_time(row['at'])}  {row['actor']}  {row['action']}  {row['target']}  "
                   f"count={row['detail'].get('count', '')}  reason={row['reason'] or ''}")


# ---- destinations ---------------------------------------------------------------------------
def _split(target: str) -> tuple[str, str]:
    channel, _, destination = target.partition("/")
    if not channel or not destination:
        _fail(f"'{target}' is not CHANNEL/DESTINATION (e.g. lab-results/fhir)")
    return channel, destination


def _control_destination(change: Callable[..., Any], done: str, target: str, reason: str, actor: str | None,
                         config: Path | None) -> None:
    """Write one pause/resume control row for CHANNEL/DESTINATION, refused for a destination no channel has."""
    channel, destination = _split(target)
    with _session(config) as session:
        known = session.known_destinations()
        session.write(lambda c: change(c, channel, destination, actor=_actor(actor), reason=reason, known=known))
    typer.echo(f"{done} {channel}/{destination}")


@destinations_app.command("pause")
def pause_command(target: TargetArg, reason: ReasonOption, actor: ActorOption = None,
                  config: ConfigOption = None) -> None:
    """Stop sending to one destination; its queue keeps growing. Survives restarts."""
    from simpul.dead_letters.controls import pause_destination

    _control_destination(pause_destination, "paused", target, reason, actor, config)


@destinations_app.command("resume")
def resume_command(target: TargetArg, reason: ReasonOption, actor: ActorOption = None,
                   config: ConfigOption = None) -> None:
    """Send again; the queue drains in order (FIFO per key)."""
    from simpul.dead_letters.controls import resume_destination

    _control_destination(resume_destination, "resumed", target, reason, actor, config)


@destinations_app.command("status")
def status_command(queue: Annotated[Optional[str], typer.Option(help="CHANNEL/DESTINATION: list its queue "
                                                                "(why each delivery waits).")] = None,
                   limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
                   as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Per destination: paused?, queue depth by status, oldest age, next attempt, last error."""
    from simpul.dead_letters.controls import destination_status, queued_deliveries

    with _session(config) as session:
        if queue:
            channel, destination = _split(queue)
            rows = session.read(lambda c: queued_deliveries(c, channel, destination, limit=limit))
        else:
            known = session.known_destinations()
            rows = session.read(lambda c: destination_status(c, known))
    if as_json:
        _json(rows)
        return
    if queue:
        for row in rows:
            typer.echo(f"{row['id']}  {row['status']}  key={row['order_key']}  {row['message_type']} "
                       f"{row['control_id']}  attempts={row['attempts']}  next={_time(row['next_attempt_at'])}  "
                       f"last_error={row['last_error'] or ''}")
        return
    for row in rows:
        queued = ", ".join(f"{k}={v}" for k, v in row["queued"].items())
        state = f"PAUSED by {row['paused_by']} ({row['pause_reason']})" if row["paused"] else "flowing"
        typer.echo(f"{row['channel']}/{row['destination']}: {state}; {queued}; oldest="
                   f"{row['oldest_age_seconds'] or 0:.0f}s; next={_time(row['next_attempt_at'])}; "
                   f"dead_letters={row['open_dead_letters']}; last_error={row['last_error'] or ''}")


# ---- archive (retention) ---------------------------------------------------------------------
archive_app = typer.Typer(no_args_is_help=True, help="Archive finished messages out of the hot store; "
                                                     "list and restore archives.")


@archive_app.command("run")
def archive_run_command(dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be archived "
                                                              "and removed; write and delete nothing.")] = False,
                        actor: ActorOption = None, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """One retention pass now (the engine also runs one every hour): archive, fsync, then remove.

    Exit code 1 when a channel could not be archived (nothing of it was removed).
    """
    from simpul.dead_letters.retention import run_retention

    with _session(config) as session:
        channels = session.channels
        report = run_retention(session.db, channels, base_dir=session.settings.base_dir, actor=_actor(actor),
                               dry_run=dry_run)
    if as_json:
        _json(report.as_dict())
    else:
        verb = "would archive" if dry_run else "archived"
        typer.echo(f"{verb} {report.messages_archived} message(s) in {len(report.archived)} file(s)")
        for item in report.archived:
            typer.echo(f"  {item.channel}: {item.messages} message(s) received {_time(item.received_from)} .. "
                       f"{_time(item.received_until)} UTC" + (f" -> archive {item.archive_id} {item.path}"
                                                              if item.path else "")
                       + (" (encrypted)" if item.encrypted else ""))
        for channel, count in report.index_entries_removed.items():
            typer.echo(f"  {channel}: {'would remove' if dry_run else 'removed'} {count} expired index entr(ies)")
        if report.batches_deferred:
            typer.echo(f"  {report.batches_deferred} batch(es) got new work meanwhile; next run", err=True)
    for failure in report.failures:
        typer.echo(f"FAILED {failure['channel']}: {failure['error']}", err=True)
    if report.failures:
        raise typer.Exit(1)


@archive_app.command("list")
def archive_list_command(control_id: ControlOpt = None, patient_id: PatientOpt = None,
                         channel: ChannelOpt = None,
                         limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
                         offset: Annotated[int, typer.Option(min=0)] = 0,
                         as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Archive files, newest first; with --control-id/--patient-id, the archived messages that match."""
    from simpul.dead_letters.retention import find_archived, list_archives

    with _session(config) as session:
        if control_id or patient_id:
            rows: Any = session.read(lambda c: find_archived(c, control_id=control_id, patient_id=patient_id,
                                                             limit=limit))
        else:
            rows = session.read(lambda c: list_archives(c, channel=channel, limit=limit, offset=offset))
    if as_json:
        _json(rows)
        return
    if control_id or patient_id:
        for row in rows:
            typer.echo(f"archive {row['archive_id']}  {row['channel']}  {_time(row['received_at'])}  "
                       f"{row['message_type']}  {row['control_id']}  patient={row['patient_id']}")
        return
    typer.echo(f"{len(rows['items'])} of {rows['total']} archive(s)")
    for row in rows["items"]:
        typer.echo(f"{row['id']}  {_time(row['at'])}  {row['channel']}  {row['messages']} message(s) "
                   f"{_time(row['received_from'])} .. {_time(row['received_until'])}  "
                   f"{'key=' + row['key_id'] if row['key_id'] else 'not encrypted'}  {row['path']}"
                   + (f"  restored {_time(row['restored_at'])}" if row["restored_at"] else ""))


@archive_app.command("restore")
def archive_restore_command(archive_id: Annotated[Optional[int], typer.Argument(help="Archive id (all its "
                                                                                "messages).")] = None,
                            control_id: ControlOpt = None, patient_id: PatientOpt = None,
                            reason: ReasonOption = "", actor: ActorOption = None, as_json: JsonOption = False,
                            config: ConfigOption = None) -> None:
    """Put archived messages back into the hot store (with deliveries and dead letters) for replay.

    Encrypted archives need their key in SIMPUL_ARCHIVE_KEYS. Audited.
    """
    from simpul.dead_letters.retention import restore_archived

    if not reason.strip():
        _fail("refused: a reason is required to restore (--reason)", 1)
    with _session(config) as session:
        result = restore_archived(session.db, actor=_actor(actor), reason=reason, archive_id=archive_id,
                                  control_id=control_id, patient_id=patient_id)
    if as_json:
        _json({"audit_event_id": result.audit_event_id, "restored": result.restored,
               "already_in_store": result.already_in_store, "archives": result.archives})
        return
    typer.echo(f"restored {len(result.restored)} message(s) from archive(s) "
               f"{', '.join(map(str, result.archives)) or '-'} (audit event {result.audit_event_id})")
    for item in result.restored:
        typer.echo(f"  message {item['message_id']}  {item['control_id']}")
    if result.already_in_store:
        typer.echo(f"  {result.already_in_store} already in the hot store (left as they are)")
