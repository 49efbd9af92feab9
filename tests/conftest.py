"""Shared fixtures: free ports, engines started on real sockets, PostgreSQL when available."""
from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers import EngineHarness, postgres_url

pytest_plugins = ["tests.fakes.fhir_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def _postgres_database() -> str:
    """A fresh database per test run; skipped only where no PostgreSQL is reachable and CI is not set."""
    import sqlalchemy as sa

    base = postgres_url()
    admin = sa.create_engine(base.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = f"simpul_t_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable ({type(exc).__name__}); scripts/test.sh starts it")
    finally:
        admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def _drop_postgres_database(url: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store on both backends: SQLite file (the default profile) and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'simpul.db'}"
        return
    url = _postgres_database()
    yield url
    _drop_postgres_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'simpul.db'}"


@pytest.fixture
async def harness(tmp_path: Path, sqlite_url: str) -> AsyncIterator[EngineHarness]:
    """An in-process engine on SQLite; call `await harness.start(channel_yaml, ...)`."""
    engine_harness = EngineHarness(tmp_path, sqlite_url)
    yield engine_harness
    await engine_harness.stop()
