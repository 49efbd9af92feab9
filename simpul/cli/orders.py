"""`simpul orders ...`: an order's timeline, and the orders past their SLA (read from the store)."""
from __future__ import annotations

import time
from typing import Annotated, Any, Optional

import typer

from simpul.cli.common import ConfigOption, JsonOption, fail, format_time, print_json, store_session
from simpul.engine.orders import find_order, list_orders

orders_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Order-to-result tracking: timelines and late orders.")


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _numbers(order: dict[str, Any]) -> str:
    return (f"placer={order['placer_number'] or '-'} filler={order['filler_number'] or '-'}"
            + (f" accession={order['accession_number']}" if order["accession_number"] else ""))


@orders_app.command("show")
def show_command(reference: Annotated[str, typer.Argument(help="Order id, placer, filler or accession number.")],
                 as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """One order and its timeline: placed, sent, accepted, collected, preliminary, final, corrected..."""
    with store_session(config) as session:
        order = session.read(lambda c: find_order(c, reference))
    if order is None:
        fail(f"no order with id, placer, filler or accession number {reference}", 1)
    if as_json:
        print_json(order)
        return
    flags = " UNKNOWN ORDER (results only)" if order["unknown"] else ""
    typer.echo(f"order {order['order_id']}: {order['kind']} {order['code']} "
               f"{order['priority']}  {_numbers(order)}  status={order['status']}{flags}")
    if order["due_at"]:
        late = " OVERDUE" if order["overdue_at"] else ""
        typer.echo(f"due {format_time(order['due_at'])}{late}")
    for event in order["timeline"]:
        typer.echo(f"  {format_time(event['at'])}  {event['step']:<18} {event['detail']}")


@orders_app.command("overdue")
def overdue_command(kind: Annotated[Optional[str], typer.Option(help="lab or radiology.")] = None,
                    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
                    as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Orders past their SLA without a final result, the latest first. Exit code 0 either way."""
    now = time.time()
    with store_session(config) as session:
        rows = session.read(lambda c: list_orders(c, overdue=True, kind=kind, now=now, limit=limit))
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no overdue orders")
        return
    for order in rows:
        typer.echo(f"{order['order_id']}  {order['kind']} {order['priority']} {order['code']}  {_numbers(order)}  "
                   f"status={order['status']}  late by {_age(now - order['due_at'])}")

