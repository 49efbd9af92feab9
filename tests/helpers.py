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

from simpul.engine.config.settings import Settings
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


class EngineHarness:
    """Runs an Engine in this event loop with channels written to tmp_path/channels."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.channels_dir = tmp_path / "channels"
        self.channels_dir.mkdir(exist_ok=True)
        self.database_url = database_url
        self.engine: Engine | None = None

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
        }
        config.update(settings)
        self.engine = Engine(Settings.model_validate({**config, "base_dir": self.tmp_path}))
        await self.engine.start()
        return self.engine

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None

    def port_of(self, channel: str) -> int:
        assert self.engine is not None
        for key, listener in self.engine.listeners.items():
            if any(c.name == channel for c in self.engine.channels_for(key)):
                return listener.server.port
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
