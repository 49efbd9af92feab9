"""/orders: order-to-result tracking, read-only: each order's timeline and the ones past their SLA.
Orders name patients (patient id, accession), so reading them needs `messages.read`."""
from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Query

from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import StoreDep
from simpul.engine.orders import find_order, list_orders
from simpul.errors import NotFound

router = APIRouter(prefix="/orders", tags=["orders"])


@router.get("", summary="Orders, newest first (overdue: past their SLA without a final result, most late first)")
async def orders_list(store: StoreDep, overdue: bool = Query(False, description="Only orders past their SLA."),
                      kind: Literal["lab", "radiology"] | None = None,
                      status: str | None = Query(None, description="e.g. sent, accepted, preliminary, final."),
                      unknown: bool | None = Query(None, description="Only results that named no known order "
                                                                     "(true), or only placed orders (false)."),
                      limit: int = Query(100, ge=1, le=1000),
                      _: Any = requires(Permission.MESSAGES_READ)) -> Any:
    now = time.time()
    return await store.read(lambda c: list_orders(c, overdue=overdue, kind=kind, status=status, unknown=unknown,
                                                  now=now, limit=limit))


@router.get("/{reference}", summary="One order and its timeline, by id, placer, filler or accession number")
async def order_show(reference: str, store: StoreDep, _: Any = requires(Permission.MESSAGES_READ)) -> Any:
    order = await store.read(lambda c: find_order(c, reference))
    if order is None:
        raise NotFound(f"no order with id, placer, filler or accession number {reference}")
    return order
