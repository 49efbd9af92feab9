"""FastAPI dependencies: the engine, the store and the actor, handed to every route.

Routes ask for what they use (`engine: EngineDep`, `store: StoreDep`, `actor: ActorDep`) instead
of closing over an engine object, so each router module stands alone and its needs show in its
signature (and in the OpenAPI schema, for the actor header).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy import Connection

from simpul.engine.runtime import Engine
from simpul.errors import ActorRequired

ACTOR_HEADER = "X-Simpul-Actor"


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


class Store:
    """Reads on their own connection in a thread; writes through the engine's single writer,
    waiting for the disk (a person did this, so it must survive a power cut)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def read(self, fn: Callable[[Connection], Any]) -> Any:
        return await self._engine.read(fn)

    async def write(self, fn: Callable[[Connection], Any]) -> Any:
        writer = self._engine.writer
        assert writer is not None, "the engine serves HTTP only after its writer started"
        return await writer.run(fn, durable=True)


def get_store(engine: EngineDep) -> Store:
    return Store(engine)


StoreDep = Annotated[Store, Depends(get_store)]

ActorHeader = Annotated[str | None, Header(alias=ACTOR_HEADER, description="Who makes the change (kept in the "
                                           "audit trail); required for changes.")]


def require_actor(actor: str | None) -> str:
    """The actor named in the header, or ActorRequired (400)."""
    if not actor or not actor.strip():
        raise ActorRequired(f"the {ACTOR_HEADER} header is required for changes")
    return actor.strip()


def get_actor(x_simpul_actor: ActorHeader = None) -> str:
    return require_actor(x_simpul_actor)


ActorDep = Annotated[str, Depends(get_actor)]
