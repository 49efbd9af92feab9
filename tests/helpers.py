"""Test helpers: an in-process engine harness, MLLP message builders, store queries."""
from __future__ import annotations

import asyncio
import os
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from simpul.access.passwords import hash_password
from simpul.access.tokens import create_token
from simpul.access.users import create_user, find_user
from simpul.dead_letters.audit import Actor
from simpul.engine.config.settings import Settings
from simpul.app import build_engine
from simpul.store.database import open_database
from simpul.engine.runtime import Engine
from simpul.mllp.sender import open_mllp_connection

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/simpul_test"


def postgres_url() -> str:
    return os.environ.get("SIMPUL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def adt(control_id: str = "C1", *, patient: str = "MR001", event: str = "A01", sender: str = "SIMRS",
        facility: str = "RSUD", charset: str = "", msh15: str = "", msh16: str = "", name: str = "Suharto^Budi",
        visit: str = "V001") -> bytes:
    msh = (f"MSH|^~\\&|{sender}|{facility}|SIMPUL|RSUD|20261126083000+0700||ADT^{event}^ADT_A01|{control_id}|P|2.5.1"
           f"|||{msh15}|{msh16}||{charset}")
    segments = [msh.rstrip("|"), f"EVN|{event}|20261126082900+0700",
                f"PID|1||{patient}^^^RSUD^MR||{name}||19800517|M",
                f"PV1|1|I|MAWAR^101^1||||||||||||||||{visit}"]
    return ("\r".join(segments) + "\r").encode("utf-8")


def oru(control_id: str = "L1", *, patient: str = "MR001", accession: str = "ACC1") -> bytes:
    segments = [f"MSH|^~\\&|LIS|LAB|SIMPUL|RSUD|20261126101500+0700||ORU^R01^ORU_R01|{control_id}|P|2.5.1",
                f"PID|1||{patient}^^^RSUD^MR||Suharto^Budi||19800517|M",
                f"OBR|1|ORD1|FIL1|2093-3^Cholesterol^LN|||20261126080000+0700||||||||||||{accession}||||||F",
                "OBX|1|NM|2093-3^Cholesterol^LN||212|mg/dL^mg/dL^UCUM|<200|H|||F"]
    return ("\r".join(segments) + "\r").encode("utf-8")


def channel_yaml(name: str, port: int, destinations: str, *, message_types: str = "[]",
                 extra_source: str = "", mapping: str = "v2_to_fhir") -> str:
    return textwrap.dedent(f"""\
        name: {name}
        source:
          mllp:
            host: 127.0.0.1
            port: {port}
        """) + textwrap.indent(extra_source, "    ") + textwrap.dedent(f"""\
        filter:
          message_types: {message_types}
        mapping: {mapping}
        destinations:
        """) + textwrap.indent(textwrap.dedent(destinations), "  ")


TEST_ADMIN = "test-admin"
TEST_PASSWORD = "correct horse battery staple"


def issue_token(database_url: str, *, role: str = "admin", name: str | None = None, scope: str = "",
                lifetime: float = 3600.0) -> str:
    """An API token on the store at `database_url` (schema migrated; the test admin made if missing).

    Through the same functions `simpul users create` and `simpul tokens create` use, so the audit
    chain holds these events like any other."""
    db = open_database(database_url)
    try:
        actor = Actor("test-setup", role="cli", client="tests")
        with db.begin() as connection:
            if find_user(connection, TEST_ADMIN) is None:
                create_user(connection, name=TEST_ADMIN, role="admin", password_hash=_test_password_hash(),
                            actor=actor)
            issued = create_token(connection, name=name or f"test-{role}", role=role, scope=scope,
                                  lifetime=lifetime, actor=actor)
        return issued.token
    finally:
        db.dispose()


_HASHES: dict[str, str] = {}


def _test_password_hash() -> str:
    # argon2 costs ~50 ms per hash; one per test run is enough.
    if TEST_PASSWORD not in _HASHES:
        _HASHES[TEST_PASSWORD] = hash_password(TEST_PASSWORD)
    return _HASHES[TEST_PASSWORD]


def first_admin_environment() -> dict[str, str]:
    """os.environ plus the first-admin variables, for an engine child process whose console must start."""
    return {**os.environ, "SIMPUL_ADMIN_USER": TEST_ADMIN, "SIMPUL_ADMIN_PASSWORD": TEST_PASSWORD}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class EngineHarness:
    """Runs an Engine in this event loop with channels written to tmp_path/channels."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.channels_dir = tmp_path / "channels"
        self.channels_dir.mkdir(exist_ok=True)
        self.database_url = database_url
        self.engine: Engine | None = None
        self.admin_token: str | None = None

    def write_channel(self, filename: str, text: str) -> Path:
        path = self.channels_dir / filename
        path.write_text(text)
        return path

    async def start(self, channels: dict[str, str] | None = None, **settings: Any) -> Engine:
        for filename, text in (channels or {}).items():
            self.write_channel(filename, text)
        config: dict[str, Any] = {
            "database": {"url": self.database_url, "busy_timeout": settings.pop("busy_timeout", 5.0)},
            "channels_dir": str(self.channels_dir),
            "http": {"enabled": settings.pop("http", False), "port": 0},
            "delivery": {"lease": settings.pop("lease", 30.0), "poll_interval": settings.pop("poll_interval", 0.05)},
            "reload_interval": settings.pop("reload_interval", 0),
            # Mapping in a thread keeps engine start-up instant in tests; tests/engine/test_mapping_stage.py
            # (test_mapping_runs_in_a_worker_process...) covers the worker process.
            "mapping_workers": settings.pop("mapping_workers", 0),
            "ingest_process": settings.pop("ingest_process", False),
        }
        config.update(settings)
        if config["http"]["enabled"] and self.admin_token is None:
            # The console refuses to start without an admin; the tests call the API with this token.
            self.admin_token = await asyncio.to_thread(issue_token, self.database_url)
        self.engine = build_engine(Settings.model_validate({**config, "base_dir": self.tmp_path}))
        await self.engine.start()
        return self.engine

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None

    def port_of(self, channel: str) -> int:
        assert self.engine is not None
        for key, port in self.engine.listener_ports().items():
            if any(c.name == channel for c in self.engine.channels_for(key)):
                return port
        raise KeyError(channel)

    def query(self, statement: Any) -> list[Any]:
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(statement))
        finally:
            engine.dispose()

    def sql(self, text: str, **params: Any) -> list[Any]:
        return self.query(sa.text(text).bindparams(**params))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await asyncio.to_thread(predicate)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            await asyncio.sleep(interval)


async def send_one(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    connection = await open_mllp_connection("127.0.0.1", port, response_timeout=timeout)
    try:
        return await connection.send(payload)
    finally:
        await connection.close()


def segment(payload: bytes, name: str) -> list[str]:
    """Fields of the first segment `name` of an ACK (latin-1, CR separated)."""
    for line in payload.decode("latin-1").split("\r"):
        if line.startswith(name + "|"):
            return line.split("|")
    raise AssertionError(f"no {name} segment in ACK")


async def send_raw(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send one frame without the sender's checks (for messages the sender would refuse)."""
    from simpul.mllp.framing import frame

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame(payload))
        await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout)
        return data[data.index(b"\x0b") + 1:-2]
    finally:
        writer.close()


# ---- an engine in its own process (for kill -9 and CLI tests) ----------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
SIMPUL_CLI = REPO_ROOT / ".venv" / "bin" / "simpul"


def file_destination_channel(name: str, port: int, directory: Path, *, order_by: str = "patient") -> str:
    """A channel on `port` that writes every mapped message to `directory` (one file per delivery)."""
    return channel_yaml(name, port, f"""\
        - label: out
          order_by: {order_by}
          file: {{directory: {directory}}}
        """)


def write_settings(folder: Path, database_url: str, *, http_port: int, lease: str = "60s",
                   poll_interval: str = "50ms", channels_dir: Path | None = None) -> Path:
    """A settings file for `simpul run -c ...` with every path inside `folder`."""
    path = folder / "simpul.yaml"
    path.write_text(textwrap.dedent(f"""\
        database:
          url: {database_url}
        channels_dir: {channels_dir or folder / 'channels'}
        http:
          host: 127.0.0.1
          port: {http_port}
        log:
          level: WARNING
        delivery:
          lease: {lease}
          poll_interval: {poll_interval}
        reload_interval: 0
        """))
    return path


class EngineProcess:
    """`simpul run -c settings` as a child process; stderr goes to a log file inside tmp_path."""

    def __init__(self, settings_file: Path, mllp_port: int, log_file: Path) -> None:
        self.settings_file = settings_file
        self.mllp_port = mllp_port
        self.log_file = log_file
        self.process: Any = None

    def start(self, timeout: float = 15.0) -> None:
        import subprocess

        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen([str(SIMPUL_CLI), "run", "-c", str(self.settings_file)],
                                            stdout=log, stderr=log, cwd=self.settings_file.parent,
                                            env=first_admin_environment())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited with {self.process.returncode}: "
                                     f"{self.log_file.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.mllp_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"engine did not listen on {self.mllp_port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a power cut of the process."""
        import signal

        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self._wait_until_port_is_closed()

    def _wait_until_port_is_closed(self, timeout: float = 5.0) -> None:
        """The engine's ingest process dies with it, but on a kernel that ignores
        PR_SET_PDEATHSIG only its watchdog notices (within 0.1 s): until then the old listener
        still accepts. A restarted engine must not be mistaken for ready because of it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                probe.settimeout(0.2)
                if probe.connect_ex(("127.0.0.1", self.mllp_port)) != 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"port {self.mllp_port} still accepts {timeout:g}s after the engine was killed")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (the graceful path); SIGKILL if it does not stop in time."""
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return int(self.process.wait(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"engine did not stop within {timeout}s after SIGTERM") from None


def store_rows(database_url: str, query: str, **params: Any) -> list[Any]:
    """Read the store with a fresh connection (works while an engine process has it open)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query).bindparams(**params)))
    finally:
        engine.dispose()


def store_execute(database_url: str, statement: str, **params: Any) -> int:
    """Write to the store in its own committed transaction (to stage states a crash leaves)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            return int(connection.execute(sa.text(statement).bindparams(**params)).rowcount)
    finally:
        engine.dispose()
