"""`simpul bpjs sep show|retry` and `simpul satusehat status`: the national services on call.

Both read the store directly (they work while the engine is down). A retry replays the open dead
letters of the bpjs_vclaim destinations for one visit, through the same replay as
`simpul dead-letters replay` (audited, linked to the original); the connector links the new
submission in the ledger to the refusal it corrects.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from sqlalchemy import Connection

from simpul.cli.common import (
    ActorOption, ConfigOption, JsonOption, YesOption, actor_or_user, confirm, fail, format_time, print_json,
    store_session,
)
from simpul.dead_letters.national import destinations_using, retry_filters, sep_report, service_status
from simpul.dead_letters.query import DeadLetterFilter
from simpul.dead_letters.replay import ReplayPlan, execute_replay, plan_replay

bpjs_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="BPJS VClaim: SEPs per visit.")
sep_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="SEPs issued, refused, retried.")
bpjs_app.add_typer(sep_app, name="sep")
satusehat_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                            help="SATUSEHAT: what was sent, what is pending, what was refused and why.")

VisitOption = Annotated[Optional[str], typer.Option("--visit", help="Visit number (PV1-19).")]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="Most rows to show.")]


def _refusal_line(row: dict[str, Any]) -> str:
    fixed = f" (corrected by #{row['corrected_by']})" if row.get("corrected_by") else ""
    return f"#{row['id']} {format_time(row['created_at'])} visit {row['visit']} {row['kind']}: {row['message']}{fixed}"


@sep_app.command("show")
def sep_show(visit: VisitOption = None, limit: LimitOption = 50, as_json: JsonOption = False,
             config: ConfigOption = None) -> None:
    """SEPs issued and refused (BPJS's own message), newest first."""
    with store_session(config) as session:
        rows = session.read(lambda c: sep_report(c, visit=visit, limit=limit))
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no SEP issued or refused" + (f" for visit {visit}" if visit else ""))
        return
    for row in rows:
        if row["status"] == "sent":
            detail = row["detail"]
            what = row["remote_id"] or f"eligible ({detail.get('status', '')})"
            typer.echo(f"#{row['id']} {format_time(row['created_at'])} visit {row['visit']} {row['kind']} {what} "
                       f"class {detail.get('class', '')} {detail.get('type', '')}".rstrip())
        else:
            typer.echo(f"{_refusal_line(row)} [refused]")


@sep_app.command("retry")
def sep_retry(visit: Annotated[str, typer.Argument(help="Visit number (PV1-19) whose SEP was refused.")],
              reason: Annotated[str, typer.Option(help="Why (the fix made): kept in the audit trail.")],
              yes: YesOption = False, actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Send a visit's refused admission to BPJS again, after the cause was fixed."""
    if not reason.strip():
        fail("refused: a reason is required (--reason)", 1)
    with store_session(config) as session:
        channels = session.channels
        targets = destinations_using(channels, "bpjs_vclaim")
        if not targets:
            fail("refused: no channel has a bpjs_vclaim destination", 1)
        def plan(query: DeadLetterFilter) -> Callable[[Connection], ReplayPlan]:
            return lambda connection: plan_replay(connection, query, channels)

        def replay(query: DeadLetterFilter) -> Callable[[Connection], Any]:
            return lambda connection: execute_replay(connection, plan(query)(connection), actor=actor_or_user(actor),
                                                     reason=reason)

        total = sum(session.read(plan(query)).matched for query in retry_filters(visit, targets))
        if not total:
            fail(f"refused: visit {visit} has no open SEP dead letter to retry", 1)
        confirm(f"Send {total} refused admission(s) of visit {visit} to BPJS again?", yes)
        for query in retry_filters(visit, targets):
            session.write(replay(query))
    typer.echo(f"queued {total} admission(s) of visit {visit} for BPJS again; see `simpul bpjs sep show --visit {visit}`")


@satusehat_app.command("status")
def satusehat_status(visit: VisitOption = None, limit: LimitOption = 50, as_json: JsonOption = False,
                     config: ConfigOption = None) -> None:
    """Sent (by resource), pending deliveries, refusals with SATUSEHAT's own text."""
    with store_session(config) as session:
        targets = destinations_using(session.channels, "satusehat")
        report = session.read(lambda c: service_status(c, "satusehat", targets, visit=visit, limit=limit))
    if as_json:
        print_json(report)
        return
    sent = ", ".join(f"{count} {kind}" for kind, count in sorted(report["sent"].items())) or "nothing"
    typer.echo(f"sent: {sent}")
    typer.echo(f"pending: {len(report['pending'])} delivery(ies)")
    for item in report["pending"]:
        typer.echo(f"  {item['channel']}/{item['destination']} delivery {item['id']} {item['status']} "
                   f"attempts {item['attempts']} {item['last_error'] or ''}".rstrip())
    typer.echo(f"refused: {len(report['refused'])}")
    for row in report["refused"]:
        typer.echo(f"  {_refusal_line(row)}")
