"""Closed-loop MLLP load: N connections, each sends one message, waits for its ACK, sends the next.

Connections are spread over worker processes (about 50 per process) so the driver is not the
bottleneck on a 2-core machine. All workers share one wall-clock schedule: warm-up from
``start_at`` to ``start_at + warmup``, then a measured window of ``duration`` seconds. Only ACKs
that arrive inside the window count toward throughput and latency.

Every ACK is checked: MSA-1 must be AA or CA and MSA-2 must echo the MSH-10 that was sent.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import random
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

from hl7_mix import message

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"
CONNECTIONS_PER_PROCESS = 50
ACK_TIMEOUT = 10.0          # seconds; a missing ACK counts as a failure and the connection is reopened
RECONNECT_PAUSE = 0.05


@dataclass
class LevelResult:
    """What one server did at one concurrency level."""

    connections: int
    duration: float
    acked: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies_ms: array = field(default_factory=lambda: array("d"))

    @property
    def messages_per_second(self) -> float:
        return self.acked / self.duration if self.duration > 0 else 0.0

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the ACK latencies in milliseconds (nan when there are none)."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        rank = max(0, math.ceil(fraction * len(ordered)) - 1)
        return ordered[rank]


@dataclass
class _WorkerPlan:
    host: str
    port: int
    connections: int
    first_connection: int
    tag: str
    start_at: float
    warmup: float
    duration: float


def check_ack(ack: bytes, control_id: str) -> str | None:
    """None when the ACK accepts the message, else a short failure kind."""
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA"):
            fields = segment.split(b"|")
            code = fields[1] if len(fields) > 1 else b""
            echoed = fields[2] if len(fields) > 2 else b""
            if code not in (b"AA", b"CA"):
                return f"MSA-1={code.decode('ascii', 'replace')[:2]}"
            if echoed.decode("latin-1") != control_id:
                return "MSA-2 mismatch"
            return None
    return "no MSA"


async def _read_ack(reader: asyncio.StreamReader) -> bytes:
    data = await reader.readuntil(END_BLOCK)
    start = data.rfind(START_BLOCK)
    return data[start + 1:-2] if start >= 0 else data[:-2]


async def _one_connection(plan: _WorkerPlan, index: int, result: LevelResult) -> None:
    rng = random.Random(f"{plan.tag}-{index}")
    window_start = plan.start_at + plan.warmup
    window_end = window_start + plan.duration
    sequence = 0
    loop_time = time.time
    writer: asyncio.StreamWriter | None = None
    while loop_time() < window_end:
        try:
            if writer is None:
                async with asyncio.timeout(ACK_TIMEOUT):
                    reader, writer = await asyncio.open_connection(plan.host, plan.port)
            sequence += 1
            control_id = f"{plan.tag}C{index:03d}N{sequence:07d}"
            payload = START_BLOCK + message(control_id, rng) + END_BLOCK
            sent = time.perf_counter()
            writer.write(payload)
            # asyncio.timeout (3.11) rather than wait_for: no extra task per message.
            async with asyncio.timeout(ACK_TIMEOUT):
                ack = await _read_ack(reader)
            latency_ms = (time.perf_counter() - sent) * 1000.0
            now = loop_time()
            problem = check_ack(ack, control_id)
            if window_start <= now <= window_end:
                if problem is None:
                    result.acked += 1
                    result.latencies_ms.append(latency_ms)
                else:
                    result.failures[problem] += 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            if plan.start_at <= loop_time() <= window_end:
                result.failures[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
                writer = None
            await asyncio.sleep(RECONNECT_PAUSE)
    if writer is not None:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def _run_worker(plan: _WorkerPlan) -> LevelResult:
    result = LevelResult(connections=plan.connections, duration=plan.duration)
    # Open connections slightly before the schedule starts so the warm-up covers connect cost.
    delay = plan.start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    await asyncio.gather(*(_one_connection(plan, plan.first_connection + i, result)
                           for i in range(plan.connections)))
    return result


def _worker_main(plan: _WorkerPlan, results: "multiprocessing.Queue[tuple]") -> None:
    try:
        result = asyncio.run(_run_worker(plan))
        results.put((result.acked, dict(result.failures), result.latencies_ms.tobytes()))
    except BaseException as exc:  # report instead of hanging the parent's queue.get
        results.put((0, {f"driver crashed: {type(exc).__name__}": 1}, b""))


def run_level(host: str, port: int, connections: int, *, warmup: float, duration: float, tag: str) -> LevelResult:
    """Drive ``connections`` closed-loop connections at host:port and return the merged result."""
    context = multiprocessing.get_context("spawn")
    processes = max(1, math.ceil(connections / CONNECTIONS_PER_PROCESS))
    share, extra = divmod(connections, processes)
    results: multiprocessing.Queue[tuple] = context.Queue()
    # Spawned interpreters need ~0.3-1 s to import; start everyone on one clock after that.
    start_at = time.time() + 1.5
    workers = []
    first = 0
    for number in range(processes):
        count = share + (1 if number < extra else 0)
        plan = _WorkerPlan(host, port, count, first, f"{tag}W{number}", start_at, warmup, duration)
        first += count
        worker = context.Process(target=_worker_main, args=(plan, results), daemon=True)
        worker.start()
        workers.append(worker)
    merged = LevelResult(connections=connections, duration=duration)
    deadline = start_at + warmup + duration + ACK_TIMEOUT + 30
    for _ in workers:
        acked, failures, latencies = results.get(timeout=max(1.0, deadline - time.time()))
        merged.acked += acked
        merged.failures.update(failures)
        merged.latencies_ms.frombytes(latencies)
    for worker in workers:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()
    return merged
