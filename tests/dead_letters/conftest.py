from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dead_letters.support import Api
from simpul.engine.runtime import Engine
from tests.helpers import EngineHarness, issue_token


@pytest.fixture
async def api_factory() -> AsyncIterator:
    made: list[Api] = []

    def make(engine: Engine, actor: str | None = "oncall-ana", role: str = "admin") -> Api:
        """A client of `engine`'s API with a fresh token named `actor` (None: no token at all)."""
        assert engine.http_port is not None
        token = issue_token(engine.settings.database_url(), role=role, name=actor) if actor else None
        made.append(Api(engine.http_port, token))
        return made[-1]
    yield make
    for api in made:
        await api.close()


@pytest.fixture
async def store_harness(tmp_path: Path, database_url: str) -> AsyncIterator[EngineHarness]:
    """An in-process engine on each store backend (SQLite and PostgreSQL, from `database_url`)."""
    engine_harness = EngineHarness(tmp_path, database_url)
    yield engine_harness
    await engine_harness.stop()
