"""Simpul against the machine: ingest, sustained end-to-end throughput, claim cost, CPU and memory.

    .venv/bin/python bench/benchmark.py                       # SQLite (the default profile), ~15 min
    .venv/bin/python bench/benchmark.py --quick               # smoke run (CI), ~1 min, no figures asserted
    .venv/bin/python bench/benchmark.py --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/benchmark.py --json result.json    # also write every figure as JSON

In one run, on 127.0.0.1 only, with the compiled load driver (bench/driver/mllp_load.c):

1. Ingest, closed loop at 1, 10 and 100 connections, against
   - the compiled frame+ACK server (proves the driver is not the bottleneck),
   - the asyncio frame+ACK server (what this Python can do with no work at all),
   - the bare commit-then-ACK server (group commit, Simpul's fsync policy, nothing else),
   - Simpul (`simpul run`, MLLP -> v2_to_fhir -> file destination, mapping and delivery behind
     the ACK as in production).
2. Sustained, open loop at a fixed rate (the ADT/ORU mix) to three channels: a file destination,
   a FHIR server that answers at once (bench/http_sink.py), and one ordering key (every message
   for one patient). Reports delivered msg/s, queue age at the destination (delivered_at -
   received_at) p50/p99, whether the backlog stayed bounded, CPU microseconds per message of
   ingest, mapping and delivery (/proc), and peak RSS; searches for the highest bounded rate.
3. Claim latency with 10 and 1,000,000 deliveries waiting (many keys, one key).
4. The issue's targets, each MET or MISSED with the measured figure and its bare reference.
Targets are reported, not asserted: the exit code is 1 only when something failed to run, an
ACK was wrong, or the engine stored or delivered less than it acknowledged.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import claim_latency
import store_probe
from loadgen import DriveResult, Templates, build, drive
from processes import (
    BenchmarkError, EngineProcess, ProcessSample, ServerProcess, python_server,
)

BENCH_DIR = Path(__file__).resolve().parent
ROLES = ("ingest", "map", "deliver")
SUSTAINED_CONNECTIONS = 50          # open loop: up to 50 messages outstanding at once
BOUNDED_BACKLOG_SECONDS = 2.0       # bounded: at the end of the load at most 2 s of messages wait


@dataclass(frozen=True)
class Scenario:
    name: str
    destination: str                # file | fhir
    patients: int                   # ordering keys in the mix (1 = one key)
    target_rate: float
    label: str


SCENARIOS = (
    Scenario("file", "file", 2000, 2500.0, "file destination, 2,000 patients"),
    Scenario("fhir", "fhir", 2000, 1500.0, "FHIR endpoint answering at once, 2,000 patients"),
    Scenario("one-key", "file", 1, 1000.0, "one ordering key (every message for one patient), file"),
)


# ------------------------------------------------------------------------------ databases
class Databases:
    """A fresh store per server run: a SQLite file in the run folder, or a new PostgreSQL database."""

    def __init__(self, base_url: str | None, folder: Path) -> None:
        self.base_url = base_url
        self.folder = folder
        self.created: list[str] = []
        self.kind = "postgresql" if base_url and base_url.startswith("postgresql") else "sqlite"

    def fresh(self, name: str) -> str:
        """A new, empty store on every call (a run must never start on another run's backlog)."""
        self.created.append(f"simpul_bench_{os.getpid()}_{len(self.created)}_{name.replace('-', '_')}")
        database = self.created[-1]
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder / (database + '.db')}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        assert self.base_url is not None
        head = self.base_url.rsplit("/", 1)[0]
        return f"{head}/{database}"

    def _admin(self) -> Any:
        # Late import: psycopg only matters for a PostgreSQL run.
        import psycopg
        assert self.base_url is not None
        return psycopg.connect(self.base_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def drop_all(self) -> None:
        if self.kind != "postgresql":
            return
        with self._admin() as connection:
            for database in self.created:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# ------------------------------------------------------------------------------ ingest
@dataclass
class IngestRow:
    server: str
    connections: int
    drive: DriveResult
    cpu_us_per_msg: dict[str, float] = field(default_factory=dict)
    drained_s: float = 0.0


def _cpu_per_message(before: ProcessSample, after: ProcessSample, messages: int) -> dict[str, float]:
    if messages <= 0:
        return {}
    return {role: (after.cpu.get(role, 0.0) - before.cpu.get(role, 0.0)) * 1e6 / messages for role in after.cpu}


def run_ingest(context: "Run") -> tuple[list[IngestRow], dict[str, dict[str, float]]]:
    rows: list[IngestRow] = []
    peak: dict[str, dict[str, float]] = {}
    references: list[tuple[str, ServerProcess | None]] = []
    ack_binary = build("mllp_ack")
    if ack_binary is not None and context.driver is not None:
        references.append(("bare-c", ServerProcess([str(ack_binary), "--port", "0"], "bare-c")))
    references.append(("bare-ack", python_server("ack_only_server.py", "bare-ack")))
    references.append(("bare-commit", python_server("bare_commit_server.py", "bare-commit", "--database",
                                                    context.databases.fresh("bare-commit"))))
    for name, server in references:
        assert server is not None
        server.start()
        try:
            for level in context.levels:
                before = server.sample()
                result = context.drive(server.port, level, tag=f"{name[5:6].upper()}{level}")
                rows.append(IngestRow(name, level, result, _cpu_per_message(before, server.sample(),
                                                                            result.acked_total)))
                context.say(f"  {name:<11} @{level:>3}: {result.msg_per_s:>8.0f} msg/s  p50 {result.p50_ms:.2f} ms  "
                            f"p99 {result.p99_ms:.2f} ms")
            peak[name] = server.sample().rss_mb
        finally:
            server.stop()
    engine = EngineProcess(context.folder / "ingest", context.databases.fresh("ingest"))
    try:
        engine.start()
        for level in context.levels:
            before = engine.sample()
            result = context.drive(engine.mllp_port, level, tag=f"S{level}")
            engine.ensure_alive()
            drained = engine.wait_until_idle()
            rows.append(IngestRow("simpul", level, result, _cpu_per_message(before, engine.sample(), result.acked_total),
                                  drained))
            context.say(f"  {'simpul':<11} @{level:>3}: {result.msg_per_s:>8.0f} msg/s  p50 {result.p50_ms:.2f} ms  "
                        f"p99 {result.p99_ms:.2f} ms  (backlog drained {drained:.1f} s later)")
        peak["simpul"] = engine.sample().rss_mb
        acked = sum(row.drive.acked_total for row in rows if row.server == "simpul")
        stored = store_probe.stored_messages(store_probe.open_store(engine.database_url))
        if stored < acked:
            context.problems.append(f"ingest: only {stored} messages stored for {acked} accepted ACKs")
    finally:
        engine.stop()
    for row in rows:
        if row.drive.failed:
            context.problems.append(f"ingest: {row.server} @{row.connections}: {row.drive.failed} failed ACKs")
    return rows, peak


# ------------------------------------------------------------------------------ sustained
@dataclass
class SustainedRun:
    scenario: str
    rate: float
    duration: float
    drive: DriveResult
    delivered: store_probe.Delivered
    delivered_per_s: float
    backlog_samples: list[int]
    backlog_at_end: int
    drained_s: float
    bounded: bool
    cpu_us_per_msg: dict[str, float]
    bare_commit_cpu_us_per_msg: float
    peak_rss_mb: dict[str, float]
    sink_rss_mb: float = 0.0
    bare_commit_now: DriveResult | None = None    # bare commit-then-ACK, 10 connections, just before


def run_sustained(context: "Run", scenario: Scenario, rate: float, duration: float) -> SustainedRun:
    """One open-loop run at `rate` on a fresh engine and store; waits for the backlog to drain after."""
    folder = context.folder / f"{scenario.name}-{int(rate)}-{len(context.sustained)}"
    folder.mkdir()
    # The machine is shared: the bare commit-then-ACK server is driven again right before each
    # run, so every sustained figure has a reference from the same minutes.
    reference = python_server("bare_commit_server.py", "bare-commit", "--database",
                              context.databases.fresh(f"bare-{len(context.sustained)}")).start()
    try:
        bare = drive(context.driver, context.templates.path(), reference.port, 10, duration=2.0, warmup=0.5,
                     tag=f"R{len(context.sustained)}", processes=1)
    finally:
        reference.stop()
    sink = python_server("http_sink.py", "sink").start() if scenario.destination == "fhir" else None
    engine = EngineProcess(folder, context.databases.fresh(scenario.name), destination=scenario.destination,
                           sink_port=sink.port if sink else 0, max_in_flight=context.max_in_flight)
    store = store_probe.open_store(engine.database_url)
    warmup = min(5.0, duration / 5)
    try:
        engine.start()
        # Warm up first: the first messages load the mapping and FHIR models in every process,
        # a cost that belongs to start-up, not to the rate being measured.
        drive(context.driver, context.templates.path(scenario.patients), engine.mllp_port, 1, duration=0.5,
              warmup=0.0, tag=f"W{len(context.sustained)}", processes=1)
        engine.wait_until_idle(limit=30.0)
        before = engine.sample()
        delivered_before = store_probe.delivered_count(store)
        samples: list[int] = []
        with ThreadPoolExecutor(1) as pool:
            load_started = time.time()
            future = pool.submit(drive, context.driver, context.templates.path(scenario.patients), engine.mllp_port,
                                 SUSTAINED_CONNECTIONS, duration=duration, warmup=warmup, rate=rate,
                                 tag=f"{scenario.name[0].upper()}{len(context.sustained)}", processes=1, drain=5.0)
            while not future.done():
                time.sleep(1.0)
                samples.append(store_probe.backlog(store))
            result = future.result()
        window_start, window_end = load_started + warmup, load_started + warmup + duration
        backlog_at_end = samples[-1] if samples else 0
        drain_started = time.monotonic()
        # A run that kept up drains in seconds; one that did not is stopped sooner (its engine is
        # thrown away), and only what it delivered by then counts toward its queue age.
        drain_limit = max(30.0, duration) if backlog_at_end <= rate * BOUNDED_BACKLOG_SECONDS else 10.0
        while store_probe.backlog(store) > 0 and time.monotonic() - drain_started < drain_limit:
            engine.ensure_alive()
            time.sleep(0.5)
        drained = time.monotonic() - drain_started
        after = engine.sample()
        delivered = store_probe.delivered(store, window_start, window_end)
        processed = max(1, store_probe.delivered_count(store) - delivered_before)
        stored = store_probe.stored_messages(store)
    finally:
        store.dispose()
        engine.stop()
        sink_rss = sink.sample().rss_mb.get("sink", 0.0) if sink else 0.0
        if sink:
            sink.stop()
    if stored < result.acked_total:
        context.problems.append(f"sustained {scenario.name} @{rate:.0f}: {stored} stored for {result.acked_total} ACKs")
    if result.failed:
        context.problems.append(f"sustained {scenario.name} @{rate:.0f}: {result.failed} failed ACKs")
    if delivered.duplicates:
        context.problems.append(f"sustained {scenario.name} @{rate:.0f}: {delivered.duplicates} duplicate deliveries")
    if delivered.out_of_order_keys:
        context.problems.append(f"sustained {scenario.name} @{rate:.0f}: {delivered.out_of_order_keys} keys out of order")
    bounded = (result.failed == 0 and result.max_driver_backlog_s <= BOUNDED_BACKLOG_SECONDS
               and backlog_at_end <= rate * BOUNDED_BACKLOG_SECONDS and delivered.delivered == delivered.received)
    run = SustainedRun(scenario.name, rate, duration, result, delivered, delivered.delivered_in_window / duration,
                       samples, backlog_at_end, drained, bounded, _cpu_per_message(before, after, processed),
                       context.bare_commit_cpu, after.rss_mb, sink_rss, bare)
    context.sustained.append(run)
    context.say(f"  {scenario.name:<8} @{rate:>6.0f}/s for {duration:g} s: delivered {run.delivered_per_s:>7.0f}/s, "
                f"queue age p50 {_s(delivered.age_p50_s)} p99 {_s(delivered.age_p99_s)}, backlog at end "
                f"{backlog_at_end}, {'bounded' if bounded else 'NOT bounded'} (drained {drained:.1f} s after; "
                f"bare commit-then-ACK just before: {bare.msg_per_s:.0f} msg/s at 10 connections)")
    return run


def search_rate(context: "Run", scenario: Scenario) -> SustainedRun | None:
    """The highest bounded rate: a short probe at the target, then `steps` runs of full length."""
    if context.quick:
        run = run_sustained(context, scenario, context.quick_rate, context.duration)
        return run if run.bounded else None
    probe = run_sustained(context, scenario, scenario.target_rate, context.probe_duration)
    if probe.bounded:
        rate, low, high = scenario.target_rate * 1.3, scenario.target_rate, math.inf
    else:
        # What the destination kept up with while overloaded is where the search starts.
        rate, low, high = max(50.0, 0.9 * probe.delivered_per_s), 0.0, scenario.target_rate
    best: SustainedRun | None = None
    for _ in range(context.steps):
        run = run_sustained(context, scenario, round(rate), context.duration)
        if run.bounded:
            best = run if best is None or run.rate > best.rate else best
            low = max(low, run.rate)
        else:
            high = min(high, run.rate)
        # Steps of at most 1.5x: the bare halfway point between a low bounded rate and the target
        # would overshoot far past what the probe showed the engine can deliver.
        if high == math.inf:
            rate = low * 1.3
        elif low == 0.0:
            rate = high * 0.7
        else:
            rate = min((low + high) / 2, low * 1.5)
        if high != math.inf and high - low < 0.05 * high:
            break
    return best


# ------------------------------------------------------------------------------ the run
class Run:
    def __init__(self, arguments: argparse.Namespace) -> None:
        self.quick: bool = arguments.quick
        self.levels: list[int] = arguments.levels
        self.level_duration: float = arguments.level_duration
        self.warmup: float = arguments.warmup
        self.duration: float = arguments.duration
        self.probe_duration: float = arguments.probe_duration
        self.steps: int = arguments.steps
        self.quick_rate: float = arguments.quick_rate
        self.max_in_flight: int | None = arguments.max_in_flight
        self.claim_sizes: list[int] = arguments.claim_sizes
        self.scenarios = [s for s in SCENARIOS if s.name in arguments.scenarios]
        self.folder = Path(tempfile.mkdtemp(prefix="simpul-bench-"))
        self.databases = Databases(arguments.database, self.folder)
        self.templates = Templates()
        self.driver = build("mllp_load")
        self.sustained: list[SustainedRun] = []
        self.problems: list[str] = []
        self.bare_commit_cpu = math.nan
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            print(text, flush=True)

    def drive(self, port: int, connections: int, *, tag: str) -> DriveResult:
        return drive(self.driver, self.templates.path(), port, connections, duration=self.level_duration,
                     warmup=self.warmup, tag=tag)

    def cleanup(self, keep: bool) -> None:
        self.templates.remove()
        try:
            self.databases.drop_all()
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the report
            print(f"could not drop the benchmark databases: {exc}", file=sys.stderr)
        if keep or self.problems:
            print(f"run folder kept: {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)


def _s(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f} s"


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference and not math.isnan(reference) else math.nan


@dataclass
class Target:
    text: str
    met: bool | None       # None: not measured in this run
    measured: str
    reference: str = ""


def evaluate(ingest: list[IngestRow], best: dict[str, SustainedRun | None], claims: list[claim_latency.ClaimTiming],
             runs: list[SustainedRun]) -> list[Target]:
    by = {(row.server, row.connections): row for row in ingest}
    targets: list[Target] = []
    for scenario, minimum in (("file", 2500.0), ("fhir", 1500.0), ("one-key", 1000.0)):
        if scenario not in best:
            continue
        run = best[scenario]
        text = {"file": ">= 2,500 msg/s sustained to the file destination, queue age p99 <= 2 s",
                "fhir": ">= 1,500 msg/s sustained to a FHIR endpoint that answers at once",
                "one-key": ">= 1,000 msg/s sustained on one ordering key, in order"}[scenario]
        if run is None:
            targets.append(Target(text, False, "no rate tried stayed bounded"))
            continue
        met = run.rate >= minimum and (scenario != "file" or run.delivered.age_p99_s <= 2.0) and (
            run.delivered.out_of_order_keys == 0)
        targets.append(Target(text, met, f"{run.rate:.0f} msg/s bounded, age p99 {_s(run.delivered.age_p99_s)}"))
    if ("bare-c", 100) in by:
        proof = by[("bare-c", 100)].drive
        targets.append(Target("the load driver drives the compiled frame+ACK server to >= 50,000 msg/s at 100 "
                              "connections (the driver is not the bottleneck)", proof.msg_per_s >= 50_000,
                              f"{proof.msg_per_s:.0f} msg/s"))
    if ("simpul", 100) in by and ("bare-commit", 100) in by:
        simpul, bare = by[("simpul", 100)].drive, by[("bare-commit", 100)].drive
        ratio = _ratio(simpul.msg_per_s, bare.msg_per_s)
        targets.append(Target("ingest at 100 connections >= 10,000 msg/s or >= 0.8 of bare commit-then-ACK",
                              simpul.msg_per_s >= 10_000 or ratio >= 0.8, f"{simpul.msg_per_s:.0f} msg/s = {ratio:.2f}x",
                              f"bare {bare.msg_per_s:.0f} msg/s"))
        targets.append(Target("ACK p99 <= 20 ms at 100 connections", simpul.p99_ms <= 20.0, f"{simpul.p99_ms:.2f} ms",
                              f"bare {bare.p99_ms:.2f} ms"))
    if ("simpul", 1) in by and ("bare-commit", 1) in by:
        simpul, bare = by[("simpul", 1)].drive, by[("bare-commit", 1)].drive
        ratio = _ratio(simpul.p50_ms, bare.p50_ms)
        targets.append(Target("ACK p50 at 1 connection <= 1.3x bare commit-then-ACK", ratio <= 1.3,
                              f"{simpul.p50_ms:.2f} ms = {ratio:.2f}x", f"bare {bare.p50_ms:.2f} ms"))
    if claims:
        smallest, largest = min(c.waiting for c in claims), max(c.waiting for c in claims)
        for keys in ("many", "one"):
            small = next((c for c in claims if c.keys == keys and c.waiting == smallest), None)
            large = next((c for c in claims if c.keys == keys and c.waiting == largest), None)
            if small and large and largest > smallest:
                ratio = _ratio(large.median_ms, small.median_ms)
                targets.append(Target(f"a claim with {largest:,} waiting costs what it costs with {smallest} "
                                      f"({keys} key{'s' if keys == 'many' else ''}; met within 2x)", ratio <= 2.0,
                                      f"{large.median_ms:.2f} ms = {ratio:.1f}x", f"{small.median_ms:.2f} ms"))
    if runs:
        heaviest = max(runs, key=lambda run: sum(run.peak_rss_mb.values()))
        total = sum(heaviest.peak_rss_mb.values())
        targets.append(Target("peak RSS of all engine processes <= 400 MB in the sustained test", total <= 400,
                              f"{total:.0f} MB ({heaviest.scenario} @{heaviest.rate:.0f}/s)"))
    return targets


def print_report(context: Run, ingest: list[IngestRow], peak: dict[str, dict[str, float]],
                 best: dict[str, SustainedRun | None], claims: list[claim_latency.ClaimTiming],
                 targets: list[Target]) -> None:
    print()
    print(f"== Ingest: closed loop, ACK latency ({context.databases.kind}, {os.cpu_count()} CPUs, "
          f"{context.level_duration:g} s per level) ==")
    header = (f"{'conns':>5}  {'server':<12}{'msg/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'failed':>7}"
              f"{'vs bare-commit':>16}  cpu us/msg")
    print(header)
    print("-" * len(header))
    bare = {row.connections: row.drive for row in ingest if row.server == "bare-commit"}
    for level in context.levels:
        for row in (r for r in ingest if r.connections == level):
            reference = bare.get(level)
            ratio = _ratio(row.drive.msg_per_s, reference.msg_per_s) if reference else math.nan
            cpu = " ".join(f"{role} {value:.0f}" for role, value in sorted(row.cpu_us_per_msg.items()))
            print(f"{level:>5}  {row.server:<12}{row.drive.msg_per_s:>9.0f}{row.drive.p50_ms:>9.2f}"
                  f"{row.drive.p95_ms:>9.2f}{row.drive.p99_ms:>9.2f}{row.drive.failed:>7}{ratio:>15.2f}x  {cpu}")
    print("bare-c: compiled frame+ACK server (driver proof); bare-ack: asyncio frame+ACK; bare-commit: group "
          "commit then ACK, same fsync policy; simpul cpu is per role (ingest, map, deliver)")
    print("peak RSS MB: " + "; ".join(f"{name} " + " ".join(f"{role} {mb:.0f}" for role, mb in sorted(roles.items()))
                                      for name, roles in peak.items()))
    print()
    print(f"== Sustained: open loop, ADT/ORU mix, {SUSTAINED_CONNECTIONS} connections "
          f"(bounded = backlog at the end <= {BOUNDED_BACKLOG_SECONDS:g} s of messages; bare now = bare "
          f"commit-then-ACK msg/s at 10 connections just before the run) ==")
    header = (f"{'scenario':<9}{'rate/s':>8}{'secs':>6}{'delivered/s':>13}{'age p50':>10}{'age p99':>10}"
              f"{'backlog':>9}{'bounded':>9}{'bare now':>10}  cpu us/msg ingest/map/deliver (bare commit)  peak RSS MB ingest/map/deliver = sum")
    print(header)
    print("-" * len(header))
    for run in context.sustained:
        cpu = "/".join(f"{run.cpu_us_per_msg.get(role, math.nan):.0f}" for role in ROLES)
        rss = "/".join(f"{run.peak_rss_mb.get(role, 0.0):.0f}" for role in ROLES) + f" = {sum(run.peak_rss_mb.values()):.0f}"
        print(f"{run.scenario:<9}{run.rate:>8.0f}{run.duration:>6.0f}{run.delivered_per_s:>13.0f}"
              f"{_s(run.delivered.age_p50_s):>10}{_s(run.delivered.age_p99_s):>10}{run.backlog_at_end:>9}"
              f"{'yes' if run.bounded else 'no':>9}"
              f"{(run.bare_commit_now.msg_per_s if run.bare_commit_now else math.nan):>10.0f}  {cpu:<14} ({run.bare_commit_cpu_us_per_msg:.0f})"
              f"{'':>16}{rss}")
    for name, run in best.items():
        print(f"highest bounded rate, {name}: " + (f"{run.rate:.0f} msg/s (delivered {run.delivered_per_s:.0f}/s, "
                                                    f"age p99 {_s(run.delivered.age_p99_s)})" if run else "none"))
    if claims:
        print()
        print("== Claim latency (the destination worker's claim through the store writer; median) ==")
        for claim in claims:
            print(f"{claim.waiting:>10,} waiting, {claim.keys:<4} key{'s' if claim.keys == 'many' else ' '}: "
                  f"{claim.median_ms:>9.2f} ms (max {claim.max_ms:.2f} ms)")
    print()
    print("== Targets (reported, not asserted) ==")
    for target in targets:
        status = "MET" if target.met else ("n/a" if target.met is None else "MISSED")
        reference = f" [{target.reference}]" if target.reference else ""
        print(f"{status:<7}{target.text}: {target.measured}{reference}")
    if context.driver is None:
        print("note: no C compiler; the Python load driver ran (closed loop only, no sustained runs)")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simpul benchmark against the machine's own limits (loopback).")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: short levels, one short sustained "
                                                             "run per scenario, small claim store")
    parser.add_argument("--database", default=None, help="PostgreSQL URL to run on (a fresh database per run is "
                                                         "created there); default: SQLite files")
    parser.add_argument("--levels", default="1,10,100", help="ingest connection counts (default 1,10,100)")
    parser.add_argument("--level-duration", type=float, default=5.0, help="measured seconds per ingest level")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per ingest level")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per sustained run (default 60)")
    parser.add_argument("--probe-duration", type=float, default=10.0, help="seconds of the probe at the target rate")
    parser.add_argument("--steps", type=int, default=3, help="sustained runs per scenario in the rate search")
    parser.add_argument("--quick-rate", type=float, default=100.0, help="--quick: the one sustained rate")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="diagnostic: the destinations' max_in_flight (default: the engine's default)")
    parser.add_argument("--claim-sizes", default="10,1000000", help="waiting deliveries for the claim timing")
    parser.add_argument("--scenarios", default="file,fhir,one-key", help="sustained scenarios to run")
    parser.add_argument("--skip", default="", help="parts to skip: ingest,sustained,claims")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (engine logs, stores)")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.level_duration, arguments.warmup, arguments.duration = 1.0, 0.5, 3.0
        arguments.claim_sizes = "10,2000"
    try:
        arguments.levels = sorted({int(part) for part in arguments.levels.split(",") if part.strip()})
        arguments.claim_sizes = sorted({int(part) for part in arguments.claim_sizes.split(",") if part.strip()})
    except ValueError:
        parser.error("--levels and --claim-sizes must be comma-separated integers")
    if not arguments.levels or any(level < 1 or level > 150 for level in arguments.levels):
        parser.error("--levels must be between 1 and 150 connections (the engine's default cap is 200)")
    arguments.scenarios = [part for part in arguments.scenarios.split(",") if part]
    unknown = set(arguments.scenarios) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from file, fhir, one-key")
    arguments.skip = {part for part in arguments.skip.split(",") if part}
    if arguments.database and not arguments.database.startswith("postgresql"):
        parser.error("--database must be a postgresql:// URL (SQLite is the default)")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    context = Run(arguments)
    started = time.monotonic()
    print(f"Simpul benchmark ({'quick' if context.quick else 'full'}; store {context.databases.kind}; "
          f"driver {'compiled' if context.driver else 'Python (no C compiler)'}; {os.cpu_count()} CPUs)", flush=True)
    ingest: list[IngestRow] = []
    peak: dict[str, dict[str, float]] = {}
    best: dict[str, SustainedRun | None] = {}
    claims: list[claim_latency.ClaimTiming] = []
    try:
        if "ingest" not in arguments.skip:
            print("ingest:", flush=True)
            ingest, peak = run_ingest(context)
            bare_rows = [row for row in ingest if row.server == "bare-commit" and row.cpu_us_per_msg]
            if bare_rows:
                context.bare_commit_cpu = bare_rows[-1].cpu_us_per_msg.get("bare-commit", math.nan)
        if "sustained" not in arguments.skip and context.driver is not None:
            print("sustained:", flush=True)
            for scenario in context.scenarios:
                best[scenario.name] = search_rate(context, scenario)
        if "claims" not in arguments.skip:
            print("claims:", flush=True)
            claims = claim_latency.measure(context.databases.fresh("claims") if context.databases.kind != "sqlite"
                                           else None, arguments.claim_sizes, progress=context.say)
    except BenchmarkError as exc:
        context.problems.append(str(exc))
    except KeyboardInterrupt:
        # Ctrl-C: the servers were stopped by their own `finally`; remove the run's databases and
        # temporary files too (the folder is kept, as after any problem).
        context.problems.append("interrupted")
        context.cleanup(arguments.keep)
        return 130
    targets = evaluate(ingest, best, claims, context.sustained)
    print_report(context, ingest, peak, best, claims, targets)
    print(f"\nran {time.monotonic() - started:.0f} s")
    if arguments.json:
        arguments.json.write_text(json.dumps({
            "store": context.databases.kind, "cpus": os.cpu_count(), "quick": context.quick,
            "ingest": [asdict(row) for row in ingest], "ingest_peak_rss_mb": peak,
            "sustained": [asdict(run) for run in context.sustained],
            "highest_bounded": {name: (run.rate if run else None) for name, run in best.items()},
            "claims": [asdict(claim) for claim in claims],
            "targets": [asdict(target) for target in targets], "problems": context.problems,
        }, indent=2, default=str))
    for problem in context.problems:
        print(f"PROBLEM: {problem}")
    context.cleanup(arguments.keep)
    return 1 if context.problems else 0


if __name__ == "__main__":
    sys.exit(main())
