"""The load driver: the compiled `mllp_load` (built at first use), or the Python one without a compiler.

The compiled driver is what lets the benchmark measure the server and not the driver: on this
class of machine one Python driver process tops out near the asyncio reference server's rate,
while `mllp_load` with two processes drives the compiled frame+ACK server past 50,000 msg/s at
100 connections (the benchmark prints that figure every run as its proof).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hl7_mix import PATIENT_POOL, write_templates

DRIVER_DIR = Path(__file__).resolve().parent / "driver"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "simpul-bench"


@dataclass
class DriveResult:
    """One drive of one server (the JSON the compiled driver prints)."""

    connections: int
    rate: float                  # 0 = closed loop
    duration: float
    sent: int                    # in the measured window
    acked: int                   # accepted ACKs of messages sent (closed) or due (open) in the window
    acked_total: int             # accepted ACKs including warm-up
    msg_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    failed: int
    unanswered: int
    unsent: int                  # open loop: messages due that never went out (no idle connection)
    max_driver_backlog_s: float  # open loop: how far the schedule ran ahead of the connections

    @classmethod
    def from_json(cls, data: dict[str, float]) -> "DriveResult":
        return cls(int(data["connections"]), float(data["rate"]), float(data["duration"]), int(data["sent"]),
                   int(data["acked"]), int(data["acked_total"]), float(data["msg_per_s"]), float(data["p50_ms"]),
                   float(data["p95_ms"]), float(data["p99_ms"]), float(data["max_ms"]),
                   int(data["failed_code"] + data["failed_echo"] + data["failed_connection"]),
                   int(data["unanswered"]), int(data["unsent"]), float(data["max_driver_backlog_s"]))


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build(name: str) -> Path | None:
    """Compile bench/driver/<name>.c with -O2 into the cache (keyed by the source's hash); None without a compiler."""
    source = DRIVER_DIR / f"{name}.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = CACHE_DIR / f"{name}-{digest}"
    if binary.exists():
        return binary
    cc = compiler()
    if cc is None:
        return None
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".tmp")
    subprocess.run([cc, "-O2", "-o", str(partial), str(source)], check=True, capture_output=True)
    partial.replace(binary)
    return binary


class Templates:
    """Template files for the driver (the ADT/ORU mix), written once per run into a temp folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="simpul-bench-templates-"))
        self._paths: dict[int, Path] = {}

    def path(self, patients: int = PATIENT_POOL) -> Path:
        if patients not in self._paths:
            path = self.folder / f"mix-{patients}.bin"
            write_templates(path, patients=patients)
            self._paths[patients] = path
        return self._paths[patients]

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def drive(binary: Path | None, templates: Path, port: int, connections: int, *, duration: float, warmup: float,
          rate: float = 0.0, tag: str, processes: int | None = None, acked_file: Path | None = None,
          drain: float = 10.0) -> DriveResult:
    """Run the driver once and return its summary. Without a compiled driver only closed loop is possible."""
    if processes is None:
        # One process keeps up with ~35,000 msg/s here; past 50 connections a second one helps.
        processes = 2 if connections >= 50 and (os.cpu_count() or 1) > 1 else 1
    if binary is None:
        if rate > 0 or acked_file is not None:
            raise RuntimeError("open-loop load needs the compiled driver: install a C compiler (gcc)")
        return _python_drive(port, connections, duration=duration, warmup=warmup, tag=tag)
    command = [str(binary), "--port", str(port), "--conns", str(connections), "--templates", str(templates),
               "--duration", f"{duration}", "--warmup", f"{warmup}", "--rate", f"{rate}", "--tag", tag,
               "--procs", str(processes), "--drain", f"{drain}"]
    if acked_file is not None:
        command += ["--acked-file", str(acked_file)]
    completed = subprocess.run(command, capture_output=True, text=True,
                               timeout=duration + warmup + drain + 60)
    if completed.returncode != 0:
        raise RuntimeError(f"the load driver failed: {completed.stderr.strip()[:500]}")
    return DriveResult.from_json(json.loads(completed.stdout))


def _python_drive(port: int, connections: int, *, duration: float, warmup: float, tag: str) -> DriveResult:
    # Late import: the multi-process Python driver is only the fallback when nothing compiles C.
    from load_driver import run_level
    level = run_level("127.0.0.1", port, connections, warmup=warmup, duration=duration, tag=tag)
    failed = sum(level.failures.values())
    return DriveResult(connections, 0.0, duration, level.acked + failed, level.acked, level.acked,
                       level.messages_per_second, level.percentile(0.5), level.percentile(0.95),
                       level.percentile(0.99), max(level.latencies_ms, default=0.0), failed, 0, 0, 0.0)
