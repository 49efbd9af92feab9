"""FastAPI dependencies: the engine and the store, handed to every route.

Routes ask for what they use (`engine: EngineDep`, `store: StoreDep`) instead of closing over an
engine object, so each router module stands alone and its needs show in its signature. Who the
caller is, and whether they may, comes from simpul/api/auth.py (`requires(...)`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection

from simpul.engine.runtime import Engine


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
