"""The file destination's batches (a key's run): files appear in delivery order, all durable
before any is renamed, and a failure in the middle ends the batch with nothing half written."""
from __future__ import annotations

from pathlib import Path

from simpul.connectors.base import Outgoing
from simpul.connectors.file import FileDestination, FileDestinationConfig
from simpul.errors import ConnectorUnavailable


def outgoing(number: int) -> Outgoing:
    return Outgoing(payload=f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|B-{number}|P|2.5.1\r".encode(),
                    content_type="x-application/hl7-v2+er7", control_id=f"B-{number}", channel="adt",
                    destination="out", delivery_id=number)


async def test_a_failure_in_the_middle_of_a_batch_ends_it_there(tmp_path: Path) -> None:
    destination = FileDestination(FileDestinationConfig(directory=str(tmp_path)))
    await destination.connect()
    # A folder stands where delivery 3's file would go: its rename fails.
    (tmp_path / "adt-00000003-B-3.hl7").mkdir()
    answers = await destination.send_batch([outgoing(number) for number in range(1, 6)])
    await destination.close()
    assert [type(answer) for answer in answers] == [str, str, ConnectorUnavailable]
    assert "adt-00000003-B-3.hl7" in str(answers[2])
    names = sorted(path.name for path in tmp_path.iterdir())
    # 1 and 2 delivered; 4 and 5 were written but not renamed, and their temporary files are gone.
    assert names == ["adt-00000001-B-1.hl7", "adt-00000002-B-2.hl7", "adt-00000003-B-3.hl7"]
    assert not any(name.startswith(".") for name in names)
