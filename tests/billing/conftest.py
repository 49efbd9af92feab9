from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import EngineHarness


@pytest.fixture
async def both_stores(tmp_path: Path, database_url: str) -> AsyncIterator[EngineHarness]:
    """An in-process engine on SQLite and, marked postgres, on PostgreSQL (billing's SQL must hold on both)."""
    engine_harness = EngineHarness(tmp_path, database_url)
    yield engine_harness
    await engine_harness.stop()
