"""`simpul archive ...`: archive finished messages out of the hot store; list and restore archives."""
from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from simpul.cli.common import (
    ActorOption, ChannelOption, ConfigOption, ControlIdOption, JsonOption, PatientOption, ReasonOption, actor_or_user,
    fail, format_time, print_json, store_session,
)
from simpul.dead_letters.retention import find_archived, list_archives, restore_archived, run_retention

archive_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                          help="Archive finished messages out of the hot store; list and restore archives.")


@archive_app.command("run")
def archive_run_command(dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be archived "
                                                              "and removed; write and delete nothing.")] = False,
                        actor: ActorOption = None, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """One retention pass now (the engine also runs one every hour): archive, fsync, then remove.

    Exit code 1 when a channel could not be archived (nothing of it was removed).
    """
    with store_session(config) as session:
        channels = session.channels
        report = run_retention(session.db, channels, base_dir=session.settings.base_dir, actor=actor_or_user(actor),
                               dry_run=dry_run)
    if as_json:
        print_json(report.as_dict())
    else:
        verb = "would archive" if dry_run else "archived"
        typer.echo(f"{verb} {report.messages_archived} message(s) in {len(report.archived)} file(s)")
        for item in report.archived:
            typer.echo(f"  {item.channel}: {item.messages} message(s) received {format_time(item.received_from)} .. "
                       f"{format_time(item.received_until)} UTC" + (f" -> archive {item.archive_id} {item.path}"
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
def archive_list_command(control_id: ControlIdOption = None, patient_id: PatientOption = None,
                         channel: ChannelOption = None,
                         limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
                         offset: Annotated[int, typer.Option(min=0)] = 0,
                         as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Archive files, newest first; with --control-id/--patient-id, the archived messages that match."""
    with store_session(config) as session:
        if control_id or patient_id:
            rows: Any = session.read(lambda c: find_archived(c, control_id=control_id, patient_id=patient_id,
                                                             limit=limit))
        else:
            rows = session.read(lambda c: list_archives(c, channel=channel, limit=limit, offset=offset))
    if as_json:
        print_json(rows)
        return
    if control_id or patient_id:
        for row in rows:
            typer.echo(f"archive {row['archive_id']}  {row['channel']}  {format_time(row['received_at'])}  "
                       f"{row['message_type']}  {row['control_id']}  patient={row['patient_id']}")
        return
    typer.echo(f"{len(rows['items'])} of {rows['total']} archive(s)")
    for row in rows["items"]:
        typer.echo(f"{row['id']}  {format_time(row['at'])}  {row['channel']}  {row['messages']} message(s) "
                   f"{format_time(row['received_from'])} .. {format_time(row['received_until'])}  "
                   f"{'key=' + row['key_id'] if row['key_id'] else 'not encrypted'}  {row['path']}"
                   + (f"  restored {format_time(row['restored_at'])}" if row["restored_at"] else ""))


@archive_app.command("restore")
def archive_restore_command(archive_id: Annotated[Optional[int], typer.Argument(help="Archive id (all its "
                                                                                "messages).")] = None,
                            control_id: ControlIdOption = None, patient_id: PatientOption = None,
                            reason: ReasonOption = "", actor: ActorOption = None, as_json: JsonOption = False,
                            config: ConfigOption = None) -> None:
    """Put archived messages back into the hot store (with deliveries and dead letters) for replay.

    Encrypted archives need their key in SIMPUL_ARCHIVE_KEYS. Audited.
    """
    if not reason.strip():
        fail("refused: a reason is required to restore (--reason)", 1)
    with store_session(config) as session:
        result = restore_archived(session.db, actor=actor_or_user(actor), reason=reason, archive_id=archive_id,
                                  control_id=control_id, patient_id=patient_id)
    if as_json:
        print_json({"audit_event_id": result.audit_event_id, "restored": result.restored,
               "already_in_store": result.already_in_store, "archives": result.archives})
        return
    typer.echo(f"restored {len(result.restored)} message(s) from archive(s) "
               f"{', '.join(map(str, result.archives)) or '-'} (audit event {result.audit_event_id})")
    for item in result.restored:
        typer.echo(f"  message {item['message_id']}  {item['control_id']}")
    if result.already_in_store:
        typer.echo(f"  {result.already_in_store} already in the hot store (left as they are)")
