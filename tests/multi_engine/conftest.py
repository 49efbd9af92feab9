"""A fresh, empty PostgreSQL database per test (several engine processes share a PostgreSQL store)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _drop_postgres_database, _postgres_database


@pytest.fixture
def postgres_database() -> Iterator[str]:
    url = _postgres_database()
    yield url
    _drop_postgres_database(url)
