from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.dead_letters.support import Api


@pytest.fixture
async def api_factory() -> AsyncIterator:
    made: list[Api] = []

    def make(port: int, actor: str | None = "oncall-ana") -> Api:
        made.append(Api(port, actor))
        return made[-1]
    yield make
    for api in made:
        await api.close()
