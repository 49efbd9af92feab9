"""Processes the benchmark starts (reference servers, `simpul run`) and what /proc says about them.

CPU time is utime + stime from /proc/<pid>/stat (all threads of the process); peak RSS is
VmHWM from /proc/<pid>/status. Simpul's process tree is split by role: the `simpul run`
process itself (routing, claims, sends, outcome bookkeeping: "deliver"), the ingest child (the
one holding the MLLP listening socket: "ingest") and the mapping workers ("map").
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchmarkError(Exception):
    """The benchmark could not run (a server did not start, died, ...)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------ /proc
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of one process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid` (breadth first)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop(0)
        for child in parents.get(current, []):
            found.append(child)
            frontier.append(child)
    return found


def _listening_inode(port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                return parts[9]
    return None


def _holds_socket(pid: int, inode: str) -> bool:
    target = f"socket:[{inode}]"
    try:
        return any(os.readlink(fd) == target for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@dataclass
class ProcessSample:
    """CPU seconds and peak RSS (MB) per role at one moment."""

    cpu: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------- plain servers
class ServerProcess:
    """A helper server that prints ``PORT <n>`` once it listens (bench/*.py or a compiled one)."""

    def __init__(self, command: list[str], name: str) -> None:
        self.command = command
        self.name = name
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> "ServerProcess":
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                        cwd=Path(__file__).resolve().parent)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise BenchmarkError(f"the {self.name} did not start")
        self.port = int(line.split()[1])
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def sample(self) -> ProcessSample:
        return ProcessSample({self.name: cpu_seconds(self.pid)}, {self.name: peak_rss_mb(self.pid)})

    def stop(self) -> str:
        """Stop it; returns what it printed after PORT."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return out or ""


def python_server(script: str, name: str, *arguments: str) -> ServerProcess:
    return ServerProcess([sys.executable, script, "--port", "0", *arguments], name)


# ------------------------------------------------------------------------------------ engine
def simpul_executable() -> str:
    candidate = Path(sys.executable).parent / "simpul"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("simpul")
    if found is None:
        raise BenchmarkError("the `simpul` command is not installed (run scripts/run.sh or pip install -e . first)")
    return found


def destination_yaml(kind: str, workdir: Path, http_port: int = 0, max_in_flight: int | None = None) -> str:
    """One destination: `file` (FHIR Bundles into a folder) or `fhir` (POST to the HTTP sink)."""
    extra = f"    max_in_flight: {max_in_flight}\n" if max_in_flight else ""
    if kind == "fhir":
        return ("  - label: fhir\n"
                "    fhir_server:\n"
                f"      base_url: http://{HOST}:{http_port}/fhir\n" + extra)
    return ("  - label: fhir-files\n"
            "    file:\n"
            f"      directory: {workdir / 'out'}\n" + extra)


class EngineProcess:
    """`simpul run` in its own folder with one channel: MLLP -> v2_to_fhir -> one destination."""

    def __init__(self, workdir: Path, database_url: str, *, destination: str = "file", sink_port: int = 0,
                 store_only: bool = False, max_in_flight: int | None = None) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.mllp_port = free_port()
        self.http_port = free_port()
        self.log_path = workdir / "engine.log"
        self.process: subprocess.Popen[bytes] | None = None
        channels = workdir / "channels"
        channels.mkdir(parents=True, exist_ok=True)
        channel_filter = "filter:\n  message_types: [\"ZZZ^Z99\"]\n" if store_only else ""
        (channels / "bench.yaml").write_text(
            "name: bench\n"
            f"source:\n  mllp:\n    host: {HOST}\n    port: {self.mllp_port}\n"
            f"{channel_filter}"
            "mapping: v2_to_fhir\n"
            "destinations:\n" + destination_yaml(destination, workdir, sink_port, max_in_flight))
        self.settings = workdir / "simpul.yaml"
        self.settings.write_text(
            f"database:\n  url: {database_url}\n  sqlite_synchronous: FULL\n"
            f"channels_dir: {channels}\n"
            f"http:\n  host: {HOST}\n  port: {self.http_port}\n"
            "log:\n  level: WARNING\n  format: json\n")

    def start(self) -> "EngineProcess":
        environment = {key: value for key, value in os.environ.items() if not key.startswith("SIMPUL_")}
        # The engine's HTTP side (health, metrics) needs a first admin; the run's own, throwaway store.
        environment.update(SIMPUL_ADMIN_USER="bench", SIMPUL_ADMIN_PASSWORD=secrets.token_urlsafe(24))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([simpul_executable(), "run", "-c", str(self.settings)],
                                            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=environment)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            self.ensure_alive()
            if self._healthy() and _port_answers(self.mllp_port):
                return self
            time.sleep(0.1)
        raise BenchmarkError(f"the engine did not become ready in {STARTUP_TIMEOUT:.0f} s\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def ensure_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchmarkError(f"the engine exited with code {self.process.returncode}\n{self.log_tail()}")

    def roles(self) -> dict[int, str]:
        """pid -> deliver | ingest | map (multiprocessing's resource tracker is left out)."""
        inode = _listening_inode(self.mllp_port)
        found = {self.pid: "deliver"}
        for pid in children_of(self.pid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" in command:
                continue
            found[pid] = "ingest" if inode is not None and _holds_socket(pid, inode) else "map"
        return found

    def sample(self) -> ProcessSample:
        sample = ProcessSample()
        for pid, role in self.roles().items():
            sample.cpu[role] = sample.cpu.get(role, 0.0) + cpu_seconds(pid)
            sample.rss_mb[role] = sample.rss_mb.get(role, 0.0) + peak_rss_mb(pid)
        return sample

    def wait_until_idle(self, limit: float = 60.0) -> float:
        """Seconds until the whole tree used < 5% CPU over half a second (backlog drained), capped."""
        started = time.monotonic()
        previous = sum(self.sample().cpu.values())
        while time.monotonic() - started < limit:
            time.sleep(0.5)
            self.ensure_alive()
            current = sum(self.sample().cpu.values())
            if current - previous < 0.025:
                break
            previous = current
        return time.monotonic() - started

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
