"""`simpul dead-letters ...`: find, explain, fix and replay failed messages from a shell.

These commands talk to the store named in the engine settings (`-c config/simpul.yaml`), not to
a running engine: a replay inserts delivery rows, and the running engine's workers pick them up
at their next poll. So they work when the HTTP API is down, and the engine need not run at all.
Writes made here and through the HTTP API end in the same audit trail; `--actor` defaults to the
OS user.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from simpul.cli.common import (
    ActorOption, ChannelOption, ConfigOption, ControlIdOption, DestinationOption, JsonOption, PatientOption,
    ReasonOption, TypeOption, YesOption, actor_or_user, confirm, dead_letter_filter, fail, format_time, parse_when,
    print_json, store_session,
)
from simpul.cli.tables import Column, print_table
from simpul.dead_letters.audit import list_audit, record_audit
from simpul.dead_letters.discard import discard_dead_letters
from simpul.dead_letters.edits import edit_dead_letter
from simpul.dead_letters.query import DeadLetterFilter, count_dead_letters, search_dead_letters, show_dead_letter
from simpul.dead_letters.replay import DEFAULT_CAP, execute_replay, plan_replay
from simpul.v2 import split_segments

dead_letters_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                               help="Find, explain, fix and replay failed messages.")

DeadLetterIdArg = Annotated[int, typer.Argument(help="Dead letter id.")]
StatusOpt = Annotated[Optional[str], typer.Option(help="open, replayed or discarded.")]
ErrorOpt = Annotated[Optional[str], typer.Option(help="Text in the error class or message.")]
SinceOpt = Annotated[Optional[str], typer.Option(help="Dead-lettered from (ISO time or e.g. 2h ago).")]
UntilOpt = Annotated[Optional[str], typer.Option(help="Dead-lettered before (ISO time or a duration ago).")]

# The id, where it failed, why and the status stay longest on a narrow terminal (the error
# wraps); the time, stage and attempt count go first.
DEAD_LETTER_COLUMNS = (
    Column("id", priority=6), Column("at (UTC)", priority=1), Column("channel/destination", priority=5),
    Column("stage", priority=0), Column("type", priority=2), Column("control id", priority=5),
    Column("patient", priority=3), Column("error", priority=5, wrap=True), Column("tries", priority=0),
    Column("status", priority=6),
)

@dead_letters_app.command("list")
def list_command(channel: ChannelOption = None, destination: DestinationOption = None, status: StatusOpt = None,
                 error: ErrorOpt = None, patient_id: PatientOption = None, control_id: ControlIdOption = None,
                 message_type: TypeOption = None, since: SinceOpt = None, until: UntilOpt = None,
                 limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
                 offset: Annotated[int, typer.Option(min=0)] = 0,
                 as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List dead letters, newest first (use --offset to page)."""


    with store_session(config) as session:
        query = dead_letter_filter(channel=channel, destination=destination, status=status, error=error,
                        patient_id=patient_id, control_id=control_id, message_type=message_type,
                        since=since, until=until)
        page = session.read(lambda c: search_dead_letters(c, query, limit=limit, offset=offset))
        if page["items"]:       # patient ids on the screen: an audit event, as in the console
            criteria = {k: v for k, v in vars(query).items() if v not in (None, [], "")}
            session.write(lambda c: record_audit(c, actor=actor_or_user(None), action="dead_letter.search",
                                                 target="dead_letters", reason=None, detail={"filter": criteria}))
    if as_json:
        print_json(page)
        return
    rows = [[str(row["id"]), format_time(row["created_at"]), f"{row['channel']}/{row['destination'] or '-'}",
             row["stage"], row["message_type"], row["control_id"], row["patient_id"],
             f"{row['error_class']}: {row['error']}", str(row["attempts"]), row["status"]] for row in page["items"]]
    print_table(DEAD_LETTER_COLUMNS, rows, title=f"{len(page['items'])} of {page['total']} dead letter(s)")


@dead_letters_app.command("counts")
def counts_command(by: Annotated[str, typer.Option(help="Comma list of channel, destination, error_class, "
                                                        "stage, status, message_type.")] = "channel,destination",
                   channel: ChannelOption = None, destination: DestinationOption = None, status: StatusOpt = "open",
                   error: ErrorOpt = None, since: SinceOpt = None, until: UntilOpt = None,
                   as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Count dead letters per channel/destination/error (open ones by default)."""
    with store_session(config) as session:
        query = dead_letter_filter(channel=channel, destination=destination, status=status, error=error, since=since,
                        until=until)
        rows = session.read(lambda c: count_dead_letters(c, query, [b.strip() for b in by.split(",") if b.strip()]))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo("  ".join(f"{k}={v}" for k, v in row.items() if k != "count") + f"  count={row['count']}")


@dead_letters_app.command("show")
def show_command(dead_letter_id: DeadLetterIdArg,
                 as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Everything about one entry: why it failed, every attempt and response, edits, replays, the bytes."""
    with store_session(config) as session:
        entry = session.read(lambda c: show_dead_letter(c, dead_letter_id))
        session.write(lambda c: record_audit(c, actor=actor_or_user(None), action="dead_letter.view",
                                             target=f"dead_letters:{dead_letter_id}", reason=None, detail={}))
    if as_json:
        print_json(entry)
        return
    typer.echo(f"dead letter {entry['id']}  [{entry['status']}]  {entry['channel']}/{entry['destination'] or '-'}"
               f"  stage={entry['stage']}")
    typer.echo(f"  at {format_time(entry['created_at'])} UTC  type={entry['message_type']}"
               f"  control_id={entry['control_id']}"
               f"  patient={entry['patient_id']}  visit={entry['visit_number']}  accession={entry['accession_number']}")
    typer.echo(f"  error: {entry['error_class']}: {entry['error']}")
    if entry["resolved_at"]:
        typer.echo(f"  {entry['status']} by {entry['resolved_by']} at {format_time(entry['resolved_at'])}: "
                   f"{entry['resolution']}")
    typer.echo(f"  attempts ({len(entry['attempts'])}):")
    for attempt in entry["attempts"]:
        typer.echo(f"    #{attempt['attempt']} {format_time(attempt['started_at'])} {attempt['outcome']}"
                   f" {attempt['error_class'] or ''} {attempt['error'] or ''}".rstrip())
        if attempt["response"]:
            typer.echo(f"       response: {attempt['response'][:500]}")
    for edit in entry["edits"]:
        typer.echo(f"  edit {edit['id']} by {edit['actor']} at {format_time(edit['at'])}: {edit['reason']}")
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
                   channel: ChannelOption = None, destination: DestinationOption = None, status: StatusOpt = None,
                   error: ErrorOpt = None, patient_id: PatientOption = None, control_id: ControlIdOption = None,
                   message_type: TypeOption = None, since: SinceOpt = None, until: UntilOpt = None,
                   to: Annotated[Optional[str], typer.Option("--to", help="Send to this destination label of the "
                                                             "channel instead (e.g. a shadow/test endpoint).")] = None,
                   dry_run: Annotated[bool, typer.Option("--dry-run", help="Map and preview; send nothing.")] = False,
                   max_count: Annotated[int, typer.Option("--max", min=1, help="Refuse when more dead letters "
                                                          "match than this.")] = DEFAULT_CAP,
                   yes: YesOption = False,
                   reason: Annotated[Optional[str], typer.Option(help="Why: kept in the audit trail. Required "
                                                                 "unless --dry-run.")] = None,
                   actor: ActorOption = None, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Replay dead letters: preview first (count, patients, destinations, sample), then confirm.

    Open entries only unless --status or explicit ids are given. Each replay is a new delivery
    linked to the original, with the same payload and idempotency key.
    """
    if not dry_run and not (reason and reason.strip()):
        fail("refused: a reason is required to replay (--reason)", 1)
    with store_session(config) as session:
        query = dead_letter_filter(ids, channel=channel, destination=destination, status=status, error=error,
                        patient_id=patient_id, control_id=control_id, message_type=message_type, since=since,
                        until=until)
        channels = session.channels
        plan = session.read(lambda c: plan_replay(c, query, channels, to_destination=to, cap=max_count))
        preview = plan.preview()
        if as_json and dry_run:
            print_json({"dry_run": True, **preview})
            return
        _print_preview(preview, dry_run)
        if plan.over_cap:
            fail(f"refused: {plan.matched} dead letters match, above the cap of {max_count}; narrow the filter "
                  f"or raise the cap explicitly with --max {plan.matched}", 1)
        if dry_run:
            return
        confirm(f"Replay {preview['deliveries']} delivery(ies)?", yes)
        result = session.write(lambda c: execute_replay(c, plan_replay(c, query, channels, to_destination=to,
                                                                       cap=max_count),
                                                        actor=actor_or_user(actor), reason=reason or ""))
    if as_json:
        print_json({"audit_event_id": result.audit_event_id, "delivery_ids": result.delivery_ids,
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
    try:
        raw = file.read_bytes()
    except OSError as exc:
        fail(f"simpul: {file}: {exc.strerror}")
    with store_session(config) as session:
        channels = session.channels
        result = session.write(lambda c: edit_dead_letter(c, dead_letter_id, raw, actor=actor_or_user(actor),
                                                          reason=reason,
                                                          channels=channels))
        typer.echo(f"stored edit {result.edit_id} of dead letter {dead_letter_id}"
                   + (" (re-mapped)" if result.mapped else ""))
        if replay:
            query = DeadLetterFilter(ids=[dead_letter_id])
            plan = session.read(lambda c: plan_replay(c, query, channels, cap=1))
            _print_preview(plan.preview(), False)
            confirm("Replay the edited message?", yes)
            done = session.write(lambda c: execute_replay(c, plan_replay(c, query, channels, cap=1),
                                                          actor=actor_or_user(actor), reason=reason))
            _print_queued(done)


@dead_letters_app.command("discard")
def discard_command(ids: Annotated[Optional[list[int]], typer.Argument(help="Dead letter ids (or filters).")] = None,
                    channel: ChannelOption = None, destination: DestinationOption = None, error: ErrorOpt = None,
                    patient_id: PatientOption = None, control_id: ControlIdOption = None,
                    message_type: TypeOption = None,
                    since: SinceOpt = None, until: UntilOpt = None, reason: ReasonOption = "",
                    max_count: Annotated[int, typer.Option("--max", min=1)] = DEFAULT_CAP,
                    yes: YesOption = False,
                    actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Close open dead letters without sending. They stay searchable until retention archives them."""
    if not reason.strip():
        fail("refused: a reason is required to discard (--reason)", 1)
    with store_session(config) as session:
        query = dead_letter_filter(ids, channel=channel, destination=destination, status="open", error=error,
                        patient_id=patient_id, control_id=control_id, message_type=message_type, since=since,
                        until=until)
        page = session.read(lambda c: search_dead_letters(c, query, limit=5))
        typer.echo(f"discard would close {page['total']} open dead letter(s)", err=True)
        confirm(f"Discard {page['total']} dead letter(s)?", yes)
        count, _ = session.write(lambda c: discard_dead_letters(c, query, actor=actor_or_user(actor), reason=reason,
                                                                cap=max_count))
    typer.echo(f"discarded {count} dead letter(s)")


@dead_letters_app.command("audit")
def audit_command(action: Annotated[Optional[str],
                                    typer.Option(help="e.g. dead_letter.replay or destination.*")] = None,
                  actor: Annotated[Optional[str], typer.Option(help="Only this actor.")] = None,
                  since: SinceOpt = None, limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
                  as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List audit events (replay, edit, discard, pause, resume, archive), newest first. Read-only."""
    with store_session(config) as session:
        rows = session.read(lambda c: list_audit(c, action=action, actor=actor, since=parse_when(since), limit=limit))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{format_time(row['at'])}  {row['actor']}  {row['action']}  {row['target']}  "
                   f"count={row['detail'].get('count', '')}  reason={row['reason'] or ''}")


