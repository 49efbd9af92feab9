"""The billing job the engine runs (wired in simpul/app.py): intake, pricing, ERP polling.

Every `billing.interval`: reload the tariff table if its file changed (a broken edit is logged
with its first finding and the last good table stays), price what waits in the unpriced queue,
invoice accounts that became ready, and read the newly routed messages. Every
`billing.poll_interval` (when `billing.erp` is set): read the ERP's reconciliation, stock-alert and
staff-master pages from their kept cursors and apply them. All writes go through the engine's store writer, so they share
its transactions and durability; a failing pass is logged and the next one retries.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from simpul.billing.accounts import reprice
from simpul.billing.intake import intake_batch, read_state, write_state
from simpul.billing.invoices import invoice_if_ready
from simpul.billing.reconciliation import apply_erp_item
from simpul.billing.staff import publish_staff_member, publish_stock_alert
from simpul.billing.tariffs import TariffTable, load_tariffs
from simpul.connectors.erp import ErpClient, ErpConfig
from simpul.errors import ConfigError, ConnectorError
from simpul.store.schema import billing_accounts

log = logging.getLogger("simpul.billing")
ERP_CURSOR = "erp_cursor"
STOCK_CURSOR = "erp_stock_cursor"
STAFF_CURSOR = "erp_staff_cursor"
MAX_PAGES = 100          # per poll: a huge backlog is read over several polls, never in one blocking pass


class TariffSource:
    """The tariff table, reloaded when the file's mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.table = TariffTable([])
        self._stamp: tuple[float, int] | None = None

    def current(self) -> TariffTable:
        try:
            stat = self.path.stat()
        except OSError:
            return self.table           # no table yet: every charge waits as unpriced
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.table = load_tariffs(self.path)
                log.info("tariff table loaded", extra={"rows": len(self.table)})
            except ConfigError as exc:
                log.error("tariff table refused, the last good one stays", extra={"error": str(exc)})
        return self.table


def price_and_invoice(connection: Connection, tariffs: TariffTable, *, prefix: str) -> int:
    """Price the unpriced queue, then invoice every closed account that is now ready."""
    if not reprice(connection, tariffs):
        return 0
    made = 0
    for row in connection.execute(select(billing_accounts).where(billing_accounts.c.status == "closed")).all():
        made += invoice_if_ready(connection, dict(row._mapping), prefix=prefix) is not None
    return made


def poll_erp_now(read: Callable[[Callable[[Connection], Any]], Any], write: Callable[[Callable[[Connection], Any]], Any],
                 client: ErpClient) -> int:
    """`simpul billing poll`: the engine's poll, read and applied through the CLI's store session."""
    applied = 0
    for name, fetch, apply_one in _feeds(client):
        cursor = read(_state_reader(name)) or None
        for _ in range(MAX_PAGES):
            items, next_cursor = fetch(cursor)
            write(_page_applier(items, next_cursor, name, apply_one))
            applied += len(items)
            if not items or not next_cursor or next_cursor == cursor:
                break
            cursor = next_cursor
    return applied


def _state_reader(name: str) -> Callable[[Connection], str]:
    return lambda connection: read_state(connection, name, "")


def _page_applier(items: list[dict[str, Any]], next_cursor: str | None, cursor_name: str,
                  apply_one: Callable[[Connection, dict[str, Any]], Any]) -> Callable[[Connection], None]:
    """One page and its cursor, applied in one transaction: a crash re-reads the page, whose items apply alike."""
    def apply(connection: Connection) -> None:
        for item in items:
            apply_one(connection, item)
        if next_cursor:
            write_state(connection, cursor_name, next_cursor)
    return apply


async def poll_once(engine: Any, client: ErpClient) -> int:
    """Read every ERP feed after its kept cursor; each page is applied with its cursor in one transaction."""
    applied = 0
    for name, fetch, apply_one in _feeds(client):
        cursor = await engine.read(_state_reader(name)) or None
        for _ in range(MAX_PAGES):
            items, next_cursor = await asyncio.to_thread(fetch, cursor)
            await engine.writer.run(_page_applier(items, next_cursor, name, apply_one), durable=True)
            applied += len(items)
            if not items or not next_cursor or next_cursor == cursor:
                break
            cursor = next_cursor
    return applied


Feed = tuple[str, Callable[[str | None], tuple[list[dict[str, Any]], str | None]], Callable[[Connection, dict[str, Any]], Any]]


def _feeds(client: ErpClient) -> list[Feed]:
    """(cursor name, page reader, what one item does): reconciliations, stock alerts, the staff master."""
    return [(ERP_CURSOR, lambda cursor: client.get_reconciliations("1970-01-01T00:00:00Z", cursor), apply_erp_item),
            (STOCK_CURSOR, client.get_stock_alerts, publish_stock_alert),
            (STAFF_CURSOR, client.get_staff, publish_staff_member)]


# How long stopping waits for a pass in flight: a pass cut off mid-read would finish in its thread
# after the engine disposed the pool and leave a connection open.
STOP_GRACE = 10.0


class BillingJob:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.settings = engine.settings.billing
        self.tariffs = TariffSource(engine.settings.tariffs_path())
        erp_config: ErpConfig | None = self.settings.erp
        self.client = ErpClient(erp_config) if erp_config is not None else None
        self.polled_at = 0.0

    async def one_pass(self) -> None:
        engine, prefix = self.engine, self.settings.invoice_prefix
        try:
            table = self.tariffs.current()
            settle = self.settings.settle
            while await engine.writer.run(lambda connection: intake_batch(connection, table, prefix=prefix,
                                                                          settle=settle)):
                pass
            await engine.writer.run(lambda connection: price_and_invoice(connection, table, prefix=prefix))
        except Exception as exc:  # noqa: BLE001 - the engine keeps running; the next pass retries
            log.error("billing pass failed", extra={"error_class": type(exc).__name__})
        if self.client is None or time.monotonic() - self.polled_at < self.settings.poll_interval:
            return
        try:
            applied = await poll_once(engine, self.client)
            if applied:
                log.info("ERP items applied", extra={"items": applied})
        except ConnectorError as exc:
            # the ERP down delays reconciliation; the cursors stay, the next poll resumes there
            log.warning("ERP poll failed", extra={"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a bad page must not end billing; the next poll retries
            log.error("ERP poll failed", extra={"error_class": type(exc).__name__})
        self.polled_at = time.monotonic()


async def run_billing(engine: Any) -> None:
    """The engine's billing task (a BackgroundJob); idle unless `billing.enabled`."""
    if not engine.settings.billing.enabled:
        return
    job = BillingJob(engine)
    try:
        while True:
            in_flight = asyncio.ensure_future(job.one_pass())
            try:
                await asyncio.shield(in_flight)
            except asyncio.CancelledError:
                await asyncio.wait([in_flight], timeout=STOP_GRACE)
                raise
            await asyncio.sleep(job.settings.interval)
    finally:
        if job.client is not None:
            job.client.close()
