"""Mapping in worker processes, so CPU-bound mapping never holds the GIL the ACK path needs.

Mapping an ORU costs around a millisecond of pure Python. Run in a thread of the engine
process it competes for the GIL with the event loop that reads frames and sends ACKs, and ACK
latency grows with the mapping load. A worker process (one by default; 2 cores here) takes
whole batches: one round trip per batch of up to a few hundred messages.

Workers load the channels' mappings once at start (analyst modules included) and are replaced
when a reload changes a channel's mapping. `workers: 0` maps in a thread instead (tests, debugging).
"""
from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson

from simpul.connectors.cloudevents import looks_like_event, read_event
from simpul.engine.process_guard import die_with_parent
from simpul.mappings import load_mapping
from simpul.v2 import decode_message

# One job: (channel name, raw bytes, codec). One result: (payload, error class, error text, counts),
# counts being what the message held that no map used ({"OBX-18": 3}) and message-level events
# ({"unmatched_patient": 1}), for /metrics.
Job = tuple[str, bytes, str]
Result = tuple[bytes | None, str | None, str | None, dict[str, dict[str, int]] | None]
Specs = dict[str, tuple[Any, str]]

_mappings: dict[str, Any] = {}


def _build(specs: Specs) -> dict[str, Any]:
    return {name: load_mapping(spec, base_dir=Path(base_dir)) for name, (spec, base_dir) in specs.items()}


def _load(specs: Specs) -> None:
    """Worker-process initializer."""

    die_with_parent()
    _mappings.clear()
    _mappings.update(_build(specs))


def map_stored(mapping: Any, raw: bytes, codec: str) -> tuple[bytes, dict[str, dict[str, int]] | None]:
    """Map one stored message as the channel's mapping reads it: (payload, counts for /metrics).

    A CloudEvent (broker source, emit_event): its data is the input, FHIR (map_fhir) or HL7v2
    text. Anything else is HL7v2 decoded with the codec ingest used (stored with the message)."""
    if looks_like_event(raw):
        event = read_event(raw)
        if not event.is_hl7v2:
            return mapping.map_fhir(event.data, event_id=event.id), None
        text = event.data
    else:
        text, _ = decode_message(raw, "", default=codec or "utf-8")
    bundle, report = mapping.map_with_report(text)
    return orjson.dumps(bundle), {"not_mapped": dict(report.not_mapped), "events": dict(report.counts)}


def _map_with(mappings: dict[str, Any], jobs: Sequence[Job]) -> list[Result]:
    results: list[Result] = []
    for channel, raw, codec in jobs:
        try:
            payload, counts = map_stored(mappings[channel], raw, codec)
            results.append((payload, None, None, counts))
        except Exception as exc:  # noqa: BLE001 - any mapping failure becomes a dead letter
            results.append((None, type(exc).__name__, str(exc)[:2000], None))
    return results


def _map_batch(jobs: Sequence[Job]) -> list[Result]:
    return _map_with(_mappings, jobs)


class MappingPool:
    def __init__(self, specs: Specs, workers: int = 1) -> None:
        self.specs = specs
        self.workers = workers
        self._executor: Executor | None = None
        self._local: dict[str, Any] = {}
        if workers > 0:
            context = multiprocessing.get_context("spawn")   # never fork a process that runs threads
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                 initializer=_load, initargs=(specs,))
        else:
            self._local = _build(specs)

    async def map_batch(self, jobs: Sequence[Job]) -> list[Result]:
        if not jobs:
            return []
        if self._executor is None:
            return await asyncio.to_thread(_map_with, self._local, jobs)
        loop = asyncio.get_running_loop()
        size = max(1, -(-len(jobs) // self.workers))
        chunks = [list(jobs[i:i + size]) for i in range(0, len(jobs), size)]
        try:
            parts = await asyncio.gather(*(loop.run_in_executor(self._executor, _map_batch, chunk)
                                           for chunk in chunks))
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start fresh ones; the caller retries the batch.
            self._executor = ProcessPoolExecutor(max_workers=self.workers,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_load, initargs=(self.specs,))
            raise
        return [result for part in parts for result in part]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)   # queued batches still finish; their callers wait
            self._executor = None


def specs_of(channels: Sequence[Any]) -> Specs:
    """What a worker needs to rebuild each channel's mapping: its spec and its folder."""
    specs: Specs = {}
    for runtime in channels:
        specs[runtime.name] = (runtime.mapping_spec, str(runtime.path.parent))
    return specs
