"""Every public sample message in tests/corpus goes through the running engine over MLLP:
each is ACKed (AA, or CA in enhanced mode), stored byte-exact, and ends mapped and delivered or, for the one type with
no map, as a dead letter at the mapping stage. Nothing is lost or silently dropped."""
from __future__ import annotations

import json
from pathlib import Path

from simpul.engine.message_files import read_message_file
from simpul.mllp.sender import open_mllp_connection
from tests.helpers import channel_yaml, free_port, segment

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


async def test_the_whole_corpus_is_acked_stored_and_mapped_or_dead_lettered(harness, tmp_path):
    port = free_port()
    await harness.start({"all.yaml": channel_yaml("all", port, f"""\
        - label: fhir-files
          order_by: none
          file: {{directory: {tmp_path / 'out'}}}
        """, mapping="{builtin: v2_to_fhir, default_timezone: '+07:00'}",
        # One public sample declares ASCII in MSH-18 and carries UTF-8 text: without a fallback
        # charset it is answered CE (tested in test_ingest), with one it is read as UTF-8.
        extra_source="fallback_charset: utf-8\n")}, mapping_workers=1)
    sent = []
    connection = await open_mllp_connection("127.0.0.1", port)
    for path in sorted(CORPUS.glob("*.hl7")):
        for message in read_message_file(path):
            ack = await connection.send(message)
            # CA: enhanced mode; b"": MSH-15 NE asked for no accept ACK (and the engine sent none)
            assert ack == b"" or segment(ack, "MSA")[1] in ("AA", "CA"), path.name
            sent.append(message)
    await connection.close()
    assert len(sent) >= 180

    def settled() -> bool:
        return harness.sql("SELECT count(*) AS n FROM messages WHERE status = 'received'")[0].n == 0 and \
            harness.sql("SELECT count(*) AS n FROM deliveries WHERE status != 'delivered'")[0].n == 0
    await harness.wait_for(settled, timeout=60)

    stored = harness.sql("SELECT id, raw FROM messages ORDER BY id")
    # Resends with the same control id and content are answered from the dedup index, not stored twice.
    assert {bytes(row.raw) for row in stored} == set(sent)
    delivered = {row.message_id for row in harness.sql("SELECT message_id FROM deliveries WHERE status='delivered'")}
    dead = harness.sql("SELECT message_id, stage, error_class FROM dead_letters")
    assert {row.stage for row in dead} <= {"mapping"}
    assert {row.error_class for row in dead} <= {"UnsupportedMessageType", "NothingToMap"}
    assert delivered | {row.message_id for row in dead} == {row.id for row in stored}
    # the ACK and PPR^PC1 samples have no map, six ORU samples are an MSH only
    assert len(delivered) >= len(stored) - 8
    for path in (tmp_path / "out").glob("*.json"):
        bundle = json.loads(path.read_text())
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction" and bundle["entry"]
