"""/bpjs/seps and /satusehat/status: the national services on call (what `simpul bpjs sep show`
and `simpul satusehat status` print), read from the ledger and the delivery queues. The services' answers can name patients, so these
need what dead letters need: `dead_letters.read` (operators)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import EngineDep, StoreDep
from simpul.dead_letters.national import destinations_using, sep_report, service_status

router = APIRouter(tags=["national services"])


@router.get("/bpjs/seps", summary="SEPs issued and refused (BPJS's message), newest first")
async def seps(store: StoreDep, visit: str | None = None, limit: int = Query(50, ge=1, le=1000),
               _: Principal = requires(Permission.DEAD_LETTERS_READ)) -> Any:
    return await store.read(lambda c: sep_report(c, visit=visit, limit=limit))


@router.get("/eklaim/claims", summary="INA-CBG claims sent and refused (E-Klaim's message)")
async def claims(engine: EngineDep, store: StoreDep, visit: str | None = None,
                 limit: int = Query(50, ge=1, le=1000),
               _: Principal = requires(Permission.DEAD_LETTERS_READ)) -> Any:
    targets = destinations_using(engine.channels, "eklaim")
    return await store.read(lambda c: service_status(c, "eklaim", targets, visit=visit, limit=limit))


@router.get("/satusehat/status", summary="SATUSEHAT: sent by resource, pending deliveries, refusals and why")
async def satusehat_status(engine: EngineDep, store: StoreDep, visit: str | None = None,
                           limit: int = Query(50, ge=1, le=1000),
               _: Principal = requires(Permission.DEAD_LETTERS_READ)) -> Any:
    targets = destinations_using(engine.channels, "satusehat")
    return await store.read(lambda c: service_status(c, "satusehat", targets, visit=visit, limit=limit))
