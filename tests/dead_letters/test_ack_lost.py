"""The ACK to the sender is lost and the sender resends: one stored message, one delivery, and
the resend is answered with the byte-identical original ACK (reliability.md F10)."""
from __future__ import annotations

import asyncio

from simpul.mllp.framing import frame
from tests.dead_letters.support import fhir_channel
from tests.helpers import adt, free_port, send_one


async def test_a_resend_after_a_lost_ack_gets_the_original_ack_and_is_stored_and_delivered_once(
        store_harness, fhir_server):
    harness = store_harness
    port = free_port()
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    message = adt("LOST-ACK-1", patient="MRLOST")

    # The sender writes the frame and its connection drops before it reads the ACK.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(message))
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    stored = await harness.wait_for(lambda: harness.sql("SELECT id, ack FROM messages WHERE ack IS NOT NULL"))
    original_ack = bytes(stored[0].ack)

    # It resends the same message on a new connection, as MLLP senders do after a timeout.
    resend_ack = await send_one(port, message)
    assert resend_ack == original_ack
    await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
    await asyncio.sleep(0.3)                      # time for a second delivery, were there one
    rows = harness.sql("SELECT id, duplicates FROM messages")
    assert [(row.id, row.duplicates) for row in rows] == [(stored[0].id, 1)]
    assert harness.sql("SELECT count(*) AS n FROM deliveries")[0].n == 1
    assert [p["identifier"][0]["value"] for p in fhir_server.resources("Patient")] == ["MRLOST"]
    posts = [r for r in fhir_server.requests if r.method == "POST"]
    assert len(posts) == 1
