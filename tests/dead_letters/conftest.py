from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dead_letters.support import Api
from tests.helpers import EngineHarness


@pytest.fixture
async def api_factory() -> AsyncIterator:
    made: list[Api] = []

    def make(port: int, actor: str | None = "oncall-ana") -> Api:
        made.append(Api(port, actor))
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
