"""The ingest process: killed alone, it is restarted and /healthz says so; the listeners come back."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from tests.helpers import adt, file_destination_channel, free_port, segment, send_one


def _spawned_children() -> list[int]:
    """Pids of this process's children started by multiprocessing's spawn (not its resource tracker)."""
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(int(pid))
    return pids


async def test_a_killed_ingest_process_is_restarted_and_reported(harness, tmp_path) -> None:
    port = free_port()
    engine = await harness.start({"adt.yaml": file_destination_channel("adt", port, tmp_path / "out")},
                                 ingest_process=True)          # mapping_workers 0: the only spawned child
    assert segment(await send_one(port, adt("IP-1")), "MSA")[1] == "AA"
    assert (await engine.health())["ingest_process"] == {"alive": True, "restarts": 0}
    [child] = _spawned_children()
    os.kill(child, signal.SIGKILL)

    async def restarted() -> bool:
        health = await engine.health()
        return health["ingest_process"] == {"alive": True, "restarts": 1} and health["status"] == "ok" \
            and port in engine.listener_ports().values()

    deadline = time.monotonic() + 30                      # generous for a loaded machine
    while not await restarted():
        assert time.monotonic() < deadline, f"ingest process not restarted: {await engine.health()}"
        await asyncio.sleep(0.05)
    assert _spawned_children() != [child]
    assert segment(await send_one(port, adt("IP-2")), "MSA")[1] == "AA"
    await harness.wait_for(lambda: len(harness.sql("SELECT id FROM messages")) == 2)
