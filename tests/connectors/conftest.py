"""Every registered destination connector, the toy plug-in included, gets the same contract."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from simpul.connectors import registry
from simpul.connectors.base import Connector

from tests.connectors.conformance import (
    Peer, Sender, destination_names, peer_for, sender_for, source_names, toy_plugin_installed,
)

TIMEOUT = 0.5   # the connector's own deadline in the contract tests (seconds)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Read from the registry at collection time: a newly registered connector joins by itself.
    if "connector_name" in metafunc.fixturenames:
        metafunc.parametrize("connector_name", destination_names())
    if "source_name" in metafunc.fixturenames:
        metafunc.parametrize("source_name", source_names())


@pytest.fixture(autouse=True)
def _toy_plugin() -> Iterator[None]:
    with toy_plugin_installed():
        yield


@pytest.fixture
async def peer(connector_name: str, tmp_path: Path) -> AsyncIterator[Peer]:
    found = peer_for(connector_name, tmp_path)
    if found is None:
        pytest.fail(f"connector '{connector_name}' is registered but has no conformance peer: "
                    f"add tests/connectors/peers/{connector_name}.py (see tests/connectors/conformance.py)")
    await found.start()
    yield found
    await found.stop()
    found.finish()


@pytest.fixture
async def connector(connector_name: str, peer: Peer) -> AsyncIterator[Connector]:
    model = registry.spec(connector_name).destination
    assert model is not None
    made = registry.create_destination(connector_name, model.model_validate(peer.config(timeout=TIMEOUT)))
    yield made
    await made.close()


@pytest.fixture
async def sender(source_name: str) -> AsyncIterator[Sender]:
    found = sender_for(source_name)
    if found is None:
        pytest.fail(f"source connector '{source_name}' is registered but has no conformance sender: "
                    f"add SENDER to tests/connectors/peers/{source_name}.py (see tests/connectors/conformance.py)")
    yield found
    await found.aclose()
