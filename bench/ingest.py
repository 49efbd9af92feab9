"""Durable-ingest benchmark: Simpul against a frame-and-ACK-only baseline.

    .venv/bin/python bench/ingest.py [--duration 5] [--warmup 1] [--levels 1,10,100] [--quick] [--keep]

In one run, on 127.0.0.1 only:

1. The baseline (bench/ack_only_server.py, own process) is driven at every level.
2. The engine (``simpul run``, own process) is started in a temporary folder on the default
   profile (SQLite WAL, synchronous FULL) with one channel: MLLP source -> no filter -> v2_to_fhir
   -> a ``file`` destination, so mapping and delivery run behind the ACK as in production.
   It is driven at every level; between levels the benchmark waits for the engine to go idle
   (the mapping/delivery backlog drained) and reports how long that took.
3. A table of msg/s and p50/p95/p99 ACK latency per level, the simpul/baseline ratio, and the
   targets with PASS/FAIL. The targets are informational: the exit code is 0 unless the engine
   failed to start, died, answered an ACK that was not AA/CA for the message, or did not store
   every message it acknowledged.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from load_driver import LevelResult, run_level

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
SETTLE_TIMEOUT = 60.0       # most seconds to wait for the engine's backlog between levels


@dataclass(frozen=True)
class Target:
    label: str
    passed: bool
    measured: str


class BenchmarkError(Exception):
    """The benchmark could not run (engine or baseline did not start, died, ...)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def simpul_executable() -> str:
    candidate = Path(sys.executable).parent / "simpul"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("simpul")
    if found is None:
        raise BenchmarkError("the `simpul` command is not installed (run scripts/run.sh or pip install -e . first)")
    return found


# ------------------------------------------------------------------------------------ engine
def write_engine_config(workdir: Path, mllp_port: int, http_port: int, *, store_only: bool = False) -> Path:
    """Settings and one channel, all paths absolute inside ``workdir``.

    ``store_only``: the channel filter matches no message of the mix, so messages are stored and
    ACKed but never mapped or delivered (a diagnostic that separates commit cost from mapping).
    """
    channels = workdir / "channels"
    channels.mkdir()
    channel_filter = "filter:\n  message_types: [\"ZZZ^Z99\"]\n" if store_only else ""
    (channels / "bench.yaml").write_text(
        "name: bench-ingest\n"
        "source:\n"
        "  mllp:\n"
        f"    host: {HOST}\n"
        f"    port: {mllp_port}\n"
        f"{channel_filter}"
        "mapping: v2_to_fhir\n"
        "destinations:\n"
        "  - label: fhir-files\n"
        "    file:\n"
        f"      directory: {workdir / 'out'}\n")
    settings = workdir / "simpul.yaml"
    settings.write_text(
        "database:\n"
        f"  url: sqlite:///{workdir / 'simpul.db'}\n"
        "  sqlite_synchronous: FULL\n"
        f"channels_dir: {channels}\n"
        "http:\n"
        f"  host: {HOST}\n"
        f"  port: {http_port}\n"
        "log:\n"
        "  level: INFO\n"
        "  format: json\n")
    return settings


def clean_environment() -> dict[str, str]:
    """Our settings file must win: drop SIMPUL_* overrides the caller may have exported."""
    return {key: value for key, value in os.environ.items() if not key.startswith("SIMPUL_")}


class EngineProcess:
    """`simpul run` in a temporary folder; stdout/stderr go to engine.log there."""

    def __init__(self, workdir: Path, *, store_only: bool = False) -> None:
        self.workdir = workdir
        self.mllp_port = free_port()
        self.http_port = free_port()
        self.settings = write_engine_config(workdir, self.mllp_port, self.http_port, store_only=store_only)
        self.log_path = workdir / "engine.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([simpul_executable(), "run", "-c", str(self.settings)],
                                            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=clean_environment())
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            self.ensure_alive()
            if self._healthy() and _port_answers(self.mllp_port):
                return
            time.sleep(0.1)
        raise BenchmarkError(f"the engine did not become ready in {STARTUP_TIMEOUT:.0f} s\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def ensure_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchmarkError(f"the engine exited with code {self.process.returncode}\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User+system CPU time of the engine process (all threads), from /proc."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_until_idle(self) -> float:
        """Seconds until the engine used < 5% CPU over half a second (backlog drained), capped."""
        started = time.monotonic()
        if not Path("/proc/self/stat").exists():
            time.sleep(2.0)
            return time.monotonic() - started
        previous = self.cpu_seconds()
        while time.monotonic() - started < SETTLE_TIMEOUT:
            time.sleep(0.5)
            self.ensure_alive()
            current = self.cpu_seconds()
            if current - previous < 0.025:
                break
            previous = current
        return time.monotonic() - started

    def stored_messages(self) -> int:
        with sqlite3.connect(f"file:{self.workdir / 'simpul.db'}?mode=ro", uri=True) as connection:
            return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no engine log)"
        return "engine log (last lines):\n" + "\n".join(text[-lines:])


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------- baseline
class BaselineProcess:
    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(BENCH_DIR / "ack_only_server.py"), "--port", "0"],
                                        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()   # "PORT <n>", or "" when it died
        if not line.startswith("PORT "):
            self.stop()
            raise BenchmarkError("the baseline server did not start")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ------------------------------------------------------------------------------------ report
def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def print_table(levels: list[int], simpul: dict[int, LevelResult], baseline: dict[int, LevelResult],
                settle: dict[int, float]) -> None:
    header = f"{'conns':>5}  {'server':<8} {'msg/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>6}"
    print(header)
    print("-" * len(header))
    for level in levels:
        for name, results in (("simpul", simpul), ("baseline", baseline)):
            result = results[level]
            print(f"{level:>5}  {name:<8} {result.messages_per_second:>9.0f} {_ms(result.percentile(0.50)):>8} "
                  f"{_ms(result.percentile(0.95)):>8} {_ms(result.percentile(0.99)):>8} "
                  f"{sum(result.failures.values()):>6}")
        ratio = _ratio(simpul[level], baseline[level])
        print(f"{'':>5}  ratio simpul/baseline msg/s = {ratio:.3f}; engine backlog drained "
              f"{settle.get(level, 0.0):.1f} s after the level")
    for name, results in (("simpul", simpul), ("baseline", baseline)):
        for level in levels:
            if results[level].failures:
                kinds = ", ".join(f"{kind} x{count}" for kind, count in results[level].failures.most_common())
                print(f"failures {name} @{level}: {kinds}")


def _ratio(simpul: LevelResult, baseline: LevelResult) -> float:
    return simpul.messages_per_second / baseline.messages_per_second if baseline.messages_per_second else math.nan


def evaluate_targets(simpul: dict[int, LevelResult], baseline: dict[int, LevelResult]) -> list[Target]:
    """The issue's targets; a target whose level was not run is skipped."""
    targets = []
    if 100 in simpul:
        rate = simpul[100].messages_per_second
        targets.append(Target(">= 10,000 msg/s at 100 connections", rate >= 10_000, f"{rate:.0f} msg/s"))
        ratio = _ratio(simpul[100], baseline[100])
        targets.append(Target(">= 0.12 of baseline msg/s at 100 connections", ratio >= 0.12, f"{ratio:.3f}"))
        p99 = simpul[100].percentile(0.99)
        targets.append(Target("p99 ACK latency <= 20 ms at 100 connections", p99 <= 20.0, f"{_ms(p99)} ms"))
    if 1 in simpul:
        p50 = simpul[1].percentile(0.50)
        targets.append(Target("p50 ACK latency <= 1 ms at 1 connection", p50 <= 1.0, f"{_ms(p50)} ms"))
    return targets


# -------------------------------------------------------------------------------------- main
def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simpul durable-ingest benchmark (loopback only).")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per level (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per level (default 1)")
    parser.add_argument("--levels", default="1,10,100", help="comma-separated connection counts (default 1,10,100)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s per level, 0.5 s warm-up")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (engine log, database)")
    parser.add_argument("--store-only", action="store_true",
                        help="diagnostic: the channel filters every message out, so only store + ACK run "
                             "(no mapping, no delivery); not the production profile")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.duration, arguments.warmup = 1.0, 0.5
    try:
        arguments.levels = sorted({int(part) for part in arguments.levels.split(",") if part.strip()})
    except ValueError:
        parser.error(f"--levels must be comma-separated integers, got {arguments.levels!r}")
    if not arguments.levels or any(level < 1 or level > 150 for level in arguments.levels):
        parser.error("--levels must be between 1 and 150 connections (the engine's default cap is 200)")
    if not 0.2 <= arguments.duration <= 600 or not 0 <= arguments.warmup <= 60:
        parser.error("--duration must be within 0.2..600 s and --warmup within 0..60 s")
    return arguments


def run(arguments: argparse.Namespace) -> int:
    levels: list[int] = arguments.levels
    simpul: dict[int, LevelResult] = {}
    baseline: dict[int, LevelResult] = {}
    settle: dict[int, float] = {}
    print(f"Simpul durable-ingest benchmark: levels {levels}, {arguments.duration:g} s measured after "
          f"{arguments.warmup:g} s warm-up per level, {os.cpu_count()} CPU(s)", flush=True)

    server = BaselineProcess()
    server.start()
    try:
        for level in levels:
            baseline[level] = run_level(HOST, server.port, level, warmup=arguments.warmup,
                                        duration=arguments.duration, tag=f"B{level}")
            print(f"  baseline @{level:>3}: {baseline[level].messages_per_second:.0f} msg/s", flush=True)
    finally:
        server.stop()

    workdir = Path(tempfile.mkdtemp(prefix="simpul-bench-"))
    engine = EngineProcess(workdir, store_only=arguments.store_only)
    problems: list[str] = []
    try:
        engine.start()
        profile = "store-only diagnostic: filter drops all" if arguments.store_only else "filter none, v2_to_fhir, file"
        print(f"  engine ready (SQLite WAL, synchronous FULL; {profile}) in {workdir}", flush=True)
        for level in levels:
            simpul[level] = run_level(HOST, engine.mllp_port, level, warmup=arguments.warmup,
                                      duration=arguments.duration, tag=f"S{level}")
            engine.ensure_alive()
            settle[level] = engine.wait_until_idle()
            print(f"  simpul   @{level:>3}: {simpul[level].messages_per_second:.0f} msg/s", flush=True)
        acked = sum(result.acked for result in simpul.values())
        stored = engine.stored_messages()
        # Warm-up messages are stored but not counted, so stored >= acked-in-window.
        if stored < acked:
            problems.append(f"only {stored} messages stored for {acked} accepted ACKs")
    except BenchmarkError as exc:
        problems.append(str(exc))
    finally:
        code = engine.stop()
        if code not in (0, None) and not problems:
            problems.append(f"the engine exited with code {code} on SIGTERM\n{engine.log_tail()}")
        if arguments.keep or problems:
            print(f"  kept {workdir} (engine.log, simpul.db)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    if len(simpul) == len(levels):
        print()
        print_table(levels, simpul, baseline, settle)
        print()
        print("Targets (informational):")
        for target in evaluate_targets(simpul, baseline):
            print(f"  {'PASS' if target.passed else 'FAIL'}  {target.label}: {target.measured}")
    for level, result in simpul.items():
        if result.failures:
            problems.append(f"{sum(result.failures.values())} failed ACK(s) from the engine at {level} connection(s)")
        if result.acked == 0:
            problems.append(f"the engine acknowledged nothing at {level} connection(s)")
    for problem in problems:
        print(f"ENGINE FAILURE: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        return run(arguments)
    except BenchmarkError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
