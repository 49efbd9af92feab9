"""A sustained open-loop run through a real `simpul run` delivers every ACKed message exactly once,
in per-patient order.

The load is open loop: message i is due at start + i / rate whatever the engine does, for about
12 s. Every patient's messages go out on one connection, one at a time (MLLP waits for the ACK),
so each patient has a well-defined send order: its sequence number. The destination is an MLLP
receiver (tests/fakes/fake_lis.py) that records every message it gets. After the backlog
drains, the receiver must hold each ACKed control id exactly once, and every patient's
messages in sequence order.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.fakes.fake_lis import FakeLis
from tests.helpers import EngineProcess, adt, channel_yaml, free_port, oru, write_settings

RATE = 100.0            # messages per second, all connections together
SECONDS = 12.0
CONNECTIONS = 8
PATIENTS = 48           # 6 per connection: several patients interleave on every connection


def _control_id(payload: bytes) -> str:
    return payload.split(b"\r", 1)[0].split(b"|")[9].decode()


def _message(index: int, patient: int, sequence: int) -> bytes:
    control_id = f"P{patient:03d}S{sequence:05d}"
    mrn = f"MR{patient:04d}"
    if index % 5 < 3:    # the benchmark's mix: ~60% ADT, ~40% ORU
        return adt(control_id, patient=mrn, event="A08" if index % 2 else "A01")
    return oru(control_id, patient=mrn, accession=f"ACC{index}")


async def _connection(port: int, queue: "asyncio.Queue[tuple[float, bytes] | None]", acked: list[str],
                      refused: list[str]) -> None:
    """Send what becomes due, in order, one message at a time; keep the control ids answered AA."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (item := await queue.get()) is not None:
            due, payload = item
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(b"\x0b" + payload + b"\x1c\r")
            answer = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout=30)
            msa = next(segment for segment in answer.split(b"\r") if segment.startswith(b"MSA"))
            code, echoed = msa.split(b"|")[1:3]
            control_id = _control_id(payload)
            assert echoed.decode() == control_id
            (acked if code == b"AA" else refused).append(control_id)
    finally:
        writer.close()


async def _open_loop(port: int) -> tuple[list[str], list[str]]:
    queues: list[asyncio.Queue[tuple[float, bytes] | None]] = [asyncio.Queue() for _ in range(CONNECTIONS)]
    sequences: Counter[int] = Counter()
    start = time.monotonic() + 0.2
    for index in range(int(RATE * SECONDS)):
        patient = index % PATIENTS
        sequences[patient] += 1
        queues[patient % CONNECTIONS].put_nowait((start + index / RATE, _message(index, patient, sequences[patient])))
    for queue in queues:
        queue.put_nowait(None)
    acked: list[str] = []
    refused: list[str] = []
    await asyncio.gather(*(_connection(port, queue, acked, refused) for queue in queues))
    return acked, refused


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_sustained_open_loop_delivers_every_acked_message_exactly_once_in_patient_order(tmp_path: Path) -> None:
    async with FakeLis() as lis:
        mllp_port, http_port = free_port(), free_port()
        channels = tmp_path / "channels"
        channels.mkdir()
        (channels / "sustained.yaml").write_text(channel_yaml("sustained", mllp_port, f"""\
            - label: lis
              mllp:
                host: 127.0.0.1
                port: {lis.port}
              order_by: patient
              max_in_flight: 16
            """))
        settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=http_port)
        engine = EngineProcess(settings, mllp_port, tmp_path / "engine.log")
        await asyncio.to_thread(engine.start, 60.0)
        try:
            acked, refused = await _open_loop(mllp_port)
            deadline = time.monotonic() + 120
            while len(lis.received) < len(acked) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)      # a duplicate would arrive after the last first copy
        finally:
            await asyncio.to_thread(engine.stop, 30.0)

    assert refused == []
    assert len(acked) == int(RATE * SECONDS)
    delivered = [_control_id(payload) for payload in lis.received]
    copies = Counter(delivered)
    assert [control_id for control_id, count in copies.items() if count > 1] == []
    assert set(delivered) == set(acked)
    by_patient: defaultdict[str, list[int]] = defaultdict(list)
    for control_id in delivered:
        patient, sequence = control_id[1:].split("S")
        by_patient[patient].append(int(sequence))
    assert len(by_patient) == PATIENTS
    out_of_order = {patient: sequence for patient, sequence in by_patient.items() if sequence != sorted(sequence)}
    assert out_of_order == {}
