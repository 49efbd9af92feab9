"""`simpul destinations ...`: pause, resume and inspect destinations.

A pause or resume writes a control row in the store; the running engine's worker checks it inside
every claim, so it takes effect within one poll interval and survives restarts.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from simpul.cli.common import (
    ActorOption, ConfigOption, JsonOption, ReasonOption, actor_or_user, format_time, print_json, split_target,
    store_session,
)
from simpul.dead_letters.controls import destination_status, pause_destination, queued_deliveries, resume_destination

destinations_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                               help="Pause, resume and inspect destinations.")

TargetArg = Annotated[str, typer.Argument(help="CHANNEL/DESTINATION")]

def _control_destination(change: Callable[..., Any], done: str, target: str, reason: str, actor: str | None,
                         config: Path | None) -> None:
    """Write one pause/resume control row for CHANNEL/DESTINATION, refused for a destination no channel has."""
    channel, destination = split_target(target)
    with store_session(config) as session:
        known = session.known_destinations()
        session.write(lambda c: change(c, channel, destination, actor=actor_or_user(actor), reason=reason, known=known))
    typer.echo(f"{done} {channel}/{destination}")


@destinations_app.command("pause")
def pause_command(target: TargetArg, reason: ReasonOption, actor: ActorOption = None,
                  config: ConfigOption = None) -> None:
    """Stop sending to one destination; its queue keeps growing. Survives restarts."""
    _control_destination(pause_destination, "paused", target, reason, actor, config)


@destinations_app.command("resume")
def resume_command(target: TargetArg, reason: ReasonOption, actor: ActorOption = None,
                   config: ConfigOption = None) -> None:
    """Send again; the queue drains in order (FIFO per key)."""
    _control_destination(resume_destination, "resumed", target, reason, actor, config)


@destinations_app.command("status")
def status_command(queue: Annotated[Optional[str], typer.Option(help="CHANNEL/DESTINATION: list its queue "
                                                                "(why each delivery waits).")] = None,
                   limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
                   as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Per destination: paused?, queue depth by status, oldest age, next attempt, last error."""
    with store_session(config) as session:
        if queue:
            channel, destination = split_target(queue)
            rows = session.read(lambda c: queued_deliveries(c, channel, destination, limit=limit))
        else:
            known = session.known_destinations()
            rows = session.read(lambda c: destination_status(c, known))
    if as_json:
        print_json(rows)
        return
    if queue:
        for row in rows:
            typer.echo(f"{row['id']}  {row['status']}  key={row['order_key']}  {row['message_type']} "
                       f"{row['control_id']}  attempts={row['attempts']}  next={format_time(row['next_attempt_at'])}  "
                       f"last_error={row['last_error'] or ''}")
        return
    for row in rows:
        queued = ", ".join(f"{k}={v}" for k, v in row["queued"].items())
        state = f"PAUSED by {row['paused_by']} ({row['pause_reason']})" if row["paused"] else "flowing"
        typer.echo(f"{row['channel']}/{row['destination']}: {state}; {queued}; oldest="
                   f"{row['oldest_age_seconds'] or 0:.0f}s; next={format_time(row['next_attempt_at'])}; "
                   f"dead_letters={row['open_dead_letters']}; last_error={row['last_error'] or ''}")


