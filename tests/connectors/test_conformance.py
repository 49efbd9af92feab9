"""The contract of every destination connector, against a real peer on 127.0.0.1.

Parametrized from the registry (see conftest.py): fhir_server, file, mllp, the toy plug-in, and any
connector added later. What the delivery runtime relies on:
- connect/close are repeatable; close is idempotent; connect after close works;
- a send that succeeds returns a short text, and the peer has the exact payload;
- errors are ConnectorUnavailable (retryable) or ConnectorRejected (final), never anything else;
- a send never outlives the connector's own timeout;
- after the peer restarts, the connector reconnects by itself;
- no credential and no message content in an error or a log line.
"""
from __future__ import annotations

import asyncio
import logging
import time
import traceback

import pytest

from simpul.connectors.base import Connector
from simpul.errors import ConnectorRejected, ConnectorUnavailable

from tests.connectors.conformance import PATIENT_MARKER, Peer
from tests.connectors.conftest import TIMEOUT


async def send_until_delivered(connector: Connector, peer: Peer, number: int, attempts: int = 3) -> str:
    """What the runtime does after a retryable failure: send again (only retryable errors allowed)."""
    for attempt in range(attempts):
        try:
            return await connector.send(peer.outgoing(number))
        except ConnectorUnavailable:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def test_connect_and_close_twice(connector: Connector, peer: Peer) -> None:
    await connector.connect()
    await connector.close()
    await connector.close()
    await connector.connect()
    await connector.connect()
    response = await connector.send(peer.outgoing(1))
    await connector.close()
    await connector.close()
    assert isinstance(response, str)
    assert peer.received() == [peer.outgoing(1).payload]


async def test_send_delivers_each_payload_in_order(connector: Connector, peer: Peer) -> None:
    await connector.connect()
    responses = [await connector.send(peer.outgoing(number)) for number in (1, 2, 3)]
    assert all(isinstance(response, str) for response in responses)
    assert peer.received() == [peer.outgoing(number).payload for number in (1, 2, 3)]


async def test_send_without_connect_first_connects_itself(connector: Connector, peer: Peer) -> None:
    await connector.send(peer.outgoing(1))
    assert peer.received() == [peer.outgoing(1).payload]


async def test_retryable_error_is_connector_unavailable_then_the_next_send_goes(connector: Connector,
                                                                                 peer: Peer) -> None:
    await connector.connect()
    peer.answer_next("retryable")
    with pytest.raises(ConnectorUnavailable):
        await connector.send(peer.outgoing(1))
    await peer.heal()
    await send_until_delivered(connector, peer, 2)
    assert peer.received()[-1] == peer.outgoing(2).payload


async def test_final_error_is_connector_rejected(connector: Connector, peer: Peer) -> None:
    if peer.final_errors:
        pytest.skip(f"{peer.connector} has no final error: {peer.final_errors}")
    await connector.connect()
    peer.answer_next("final")
    with pytest.raises(ConnectorRejected) as raised:
        await connector.send(peer.outgoing(1))
    assert not isinstance(raised.value, ConnectorUnavailable)
    await connector.send(peer.outgoing(2))     # one rejected payload does not stop the next one


async def test_send_gives_up_within_its_timeout(connector: Connector, peer: Peer) -> None:
    if peer.timeouts:
        pytest.skip(f"{peer.connector}: {peer.timeouts}")
    await connector.connect()
    peer.stall(True)
    started = time.monotonic()
    with pytest.raises(ConnectorUnavailable):
        await asyncio.wait_for(connector.send(peer.outgoing(1)), TIMEOUT * 10)
    assert time.monotonic() - started < TIMEOUT * 4
    peer.stall(False)
    await send_until_delivered(connector, peer, 2)
    assert peer.received()[-1] == peer.outgoing(2).payload


async def test_peer_down_is_retryable_and_the_connector_reconnects_after_a_restart(connector: Connector,
                                                                                   peer: Peer) -> None:
    await connector.send(peer.outgoing(1))
    await peer.stop()
    with pytest.raises(ConnectorUnavailable):
        await connector.send(peer.outgoing(2))
    await peer.start()
    await send_until_delivered(connector, peer, 3)
    await peer.restart()        # down and up between two sends: the connector must notice by itself
    await send_until_delivered(connector, peer, 4)
    received = peer.received()
    assert received[0] == peer.outgoing(1).payload and received[-2:] == [peer.outgoing(3).payload,
                                                                          peer.outgoing(4).payload]


async def test_connect_while_the_peer_is_down_is_retryable(connector: Connector, peer: Peer) -> None:
    await peer.stop()
    try:
        await connector.connect()     # lazy connectors may succeed here; the send then fails
        await connector.send(peer.outgoing(1))
    except ConnectorUnavailable:
        pass
    else:
        raise AssertionError("a send to a peer that is down succeeded")
    await peer.start()
    await send_until_delivered(connector, peer, 2)


async def test_no_secret_or_message_content_in_errors_or_logs(connector: Connector, peer: Peer,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    async def failing_send(number: int) -> None:
        try:
            await asyncio.wait_for(connector.send(peer.outgoing(number)), TIMEOUT * 10)
        except (ConnectorUnavailable, ConnectorRejected) as exc:
            errors.append(exc)

    peer.answer_next("retryable")
    await failing_send(1)
    await peer.heal()
    if not peer.final_errors:
        peer.answer_next("final")
        await failing_send(2)
    if not peer.timeouts:
        peer.stall(True)
        await failing_send(3)
        peer.stall(False)
    await peer.stop()
    await failing_send(4)
    await peer.start()
    assert len(errors) >= 2
    text = "\n".join(["".join(traceback.format_exception(error)) for error in errors]
                     + [caplog.text] + [str(record.args) for record in caplog.records])
    assert PATIENT_MARKER not in text
    if peer.secret:
        assert peer.secret not in text


async def test_a_batch_delivers_in_order_with_one_answer_per_delivery(connector: Connector, peer: Peer) -> None:
    """Connectors that take a key's run as a batch (`send_batch`): every payload arrives, in order,
    and each delivery gets its own response text."""
    if not hasattr(connector, "send_batch"):
        pytest.skip(f"{peer.connector} sends one delivery at a time")
    await connector.connect()
    answers = await connector.send_batch([peer.outgoing(number) for number in (1, 2, 3)])
    await connector.close()
    assert len(answers) == 3 and all(isinstance(answer, str) for answer in answers)
    assert peer.received() == [peer.outgoing(number).payload for number in (1, 2, 3)]


async def test_a_failed_batch_answers_with_a_retryable_error_and_sends_again(connector: Connector,
                                                                            peer: Peer) -> None:
    if not hasattr(connector, "send_batch"):
        pytest.skip(f"{peer.connector} sends one delivery at a time")
    await connector.connect()
    peer.answer_next("retryable")
    answers = await connector.send_batch([peer.outgoing(number) for number in (1, 2)])
    assert isinstance(answers[-1], ConnectorUnavailable) and len(answers) <= 2
    await peer.heal()
    assert all(isinstance(answer, str) for answer in await connector.send_batch([peer.outgoing(1), peer.outgoing(2)]))
    await connector.close()
    assert peer.received()[-2:] == [peer.outgoing(1).payload, peer.outgoing(2).payload]
