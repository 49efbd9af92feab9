"""`simpul reconciliation ...` and `simpul billing ...`: encounter-to-cash work queues from the shell.

    simpul reconciliation open            open work items (mismatches) with their age
    simpul reconciliation report [--csv]  the daily report: open balances, work items, totals per payer
    simpul reconciliation resolve ID      mark a work item resolved
    simpul billing unpriced               charges waiting for a tariff
    simpul billing poll                   read the ERP's reconciliations now (billing.erp in the settings)
"""
from __future__ import annotations

from typing import Annotated, Any

import typer

from simpul.billing.accounts import unpriced_queue
from simpul.billing.job import poll_erp_now
from simpul.billing.reconciliation import daily_report, open_items, report_csv, resolve_item
from simpul.cli.common import ActorOption, ConfigOption, JsonOption, actor_or_user, fail, settings_from, store_session
from simpul.cli.output import format_time, print_json
from simpul.connectors.erp import ErpClient
from simpul.errors import ConnectorError

reconciliation_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                                 help="Reconciliation with the ERP: work items and the daily report.")
billing_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Charges, tariffs and the ERP poll.")


def _money(value: Any) -> str:
    return "" if value is None else str(int(value))


@reconciliation_app.command("open")
def open_command(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Open work items: amount differs, unknown invoice, payment without invoice, claim rejected."""
    with store_session(config) as session:
        items = session.read(open_items)
    if as_json:
        print_json(items)
        return
    if not items:
        typer.echo("no open reconciliation items")
    for item in items:
        typer.echo(f"{item['id']}\t{item['kind']}\tinvoice={item['invoice_no'] or '-'}\t"
                   f"erp={item['erp_invoice_no'] or '-'}\texpected={_money(item['expected'])}\t"
                   f"actual={_money(item['actual'])}\topened={format_time(item['opened_at'])}")


@reconciliation_app.command("report")
def report_command(csv: Annotated[bool, typer.Option("--csv", help="CSV (one row per balance, item, payer).")] = False,
                   as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """The daily reconciliation report: open balances with ageing, open items, totals per payer."""
    with store_session(config) as session:
        report = session.read(daily_report)
    if as_json:
        print_json(report)
    elif csv:
        typer.echo(report_csv(report), nl=False)
    else:
        for row in report["open_balances"]:
            typer.echo(f"open  {row['invoice_no']}  {row['payer_type']}  {row['status']}  "
                       f"expected={row['expected']}  paid={row['paid']}  open={row['balance']}  {row['ageing']} days")
        for item in report["work_items"]:
            typer.echo(f"item  {item['id']}  {item['kind']}  {item['invoice_no'] or item['erp_invoice_no']}  "
                       f"{item['ageing']} days")
        for payer, sums in sorted(report["per_payer"].items()):
            typer.echo(f"payer {payer}: invoices={sums['invoices']} expected={sums['expected']} "
                       f"paid={sums['paid']} open={sums['open']}")


@reconciliation_app.command("resolve")
def resolve_command(item_id: int, actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Mark one work item resolved (after fixing it in the ERP or here)."""
    who = actor_or_user(actor)
    with store_session(config) as session:
        if not session.write(lambda c: resolve_item(c, item_id)):
            fail(f"no open reconciliation item {item_id}", 1)
    typer.echo(f"resolved item {item_id} (by {who})")


@billing_app.command("unpriced")
def unpriced_command(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Charges waiting for a tariff: add the code to the tariff table and they are priced and invoiced."""
    with store_session(config) as session:
        rows = session.read(unpriced_queue)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no unpriced charges")
    for row in rows:
        typer.echo(f"{row['id']}\t{row['service_code']}\t{row['origin']}\tqty={row['quantity']}\t"
                   f"class={row['room_class'] or '*'}\tpayer={row['payer_type']}\tvisit={row['visit_number']}\t"
                   f"date={row['service_date']}")


@billing_app.command("poll")
def poll_command(config: ConfigOption = None) -> None:
    """Read the ERP's reconciliation pages now, from the kept cursor (what the engine does every poll_interval)."""
    settings = settings_from(config)
    if settings.billing.erp is None:
        fail("billing.erp is not set in the settings: there is no ERP to poll", 1)
    assert settings.billing.erp is not None
    client = ErpClient(settings.billing.erp)
    with store_session(config) as session:
        try:
            applied = poll_erp_now(session.read, session.write, client)
        except ConnectorError as exc:
            fail(f"ERP poll failed: {exc}", 1)
        finally:
            client.close()
    typer.echo(f"applied {applied} item(s) from the ERP (reconciliations, stock alerts, staff)")
