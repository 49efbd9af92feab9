"""Engine settings (config/simpul.yaml): where the store is, where the channels are, the HTTP port.

Every value can also come from the environment (SIMPUL_DATABASE_URL, SIMPUL_HTTP_PORT, ...),
which wins over the file, so secrets and per-host values stay out of git.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration
from simpul.connectors.erp import ErpConfig
from simpul.engine.config.validation import validate_document
from simpul.engine.config.yaml_marks import Finding, load_marked
from simpul.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Strict):
    url: str = Field("sqlite:///var/simpul.db", description="SQLAlchemy URL: sqlite:///path or "
                                                            "postgresql+psycopg://user@host/db.")
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = Field(
        "FULL", description="FULL (default) survives power loss; NORMAL survives only a process crash.")
    busy_timeout: Duration = Field(5.0, description="How long a SQLite writer waits for a lock before failing.")
    group_commit_max: int = Field(500, ge=1, description="Most messages sharing one commit.")


class HttpSettings(Strict):
    enabled: bool = Field(True, description="Serve /healthz, /metrics and /api/...; false runs no HTTP server.")
    host: str = Field("127.0.0.1", description="Address of the HTTP server; keep 127.0.0.1 while the API has no "
                                               "authentication.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP server.")
    docs_site: str = Field("", description="Folder of a built docs site (`mkdocs build` writes site/) to serve "
                                           "at /docs-site; empty serves none.")


class LogSettings(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")
    format: Literal["json", "text"] = Field("json", description="json: one JSON object per line on stderr; "
                                                                "text: for reading in a terminal.")


class DeliverySettings(Strict):
    lease: Duration = Field(60.0, description="How long a claimed delivery stays with its worker; "
                                              "a crashed worker's work is taken over after this.")
    poll_interval: Duration = Field(0.5, description="How often idle workers look for due retries.")


class BillingSettings(Strict):
    enabled: bool = Field(False, description="Run encounter-to-cash: accounts and charges from the stored "
                                             "ADT/DFT/ORU stream, invoices when an account closes.")
    tariffs: str = Field("config/tariffs.csv", description="The tariff table (CSV); edits are picked up while "
                                                           "running, a broken table keeps the last good one.")
    invoice_prefix: str = Field("SIMPUL", pattern=r"^[A-Za-z0-9_-]{1,20}$",
                                description="Start of invoice numbers and idempotency keys.")
    interval: Duration = Field(1.0, description="How often the billing intake reads newly routed messages.")
    settle: Duration = Field(2.0, description="A message is billed once it is this old: on PostgreSQL, writers "
                                              "commit out of id order, and the intake must not pass an open one.")
    erp: ErpConfig | None = Field(None, description="The ERP polled for payments, adjustments and claim results "
                                                    "(same options as the `erp` destination).")
    poll_interval: Duration = Field(300.0, description="How often the ERP is polled for reconciliations.")


class Settings(Strict):
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    channels_dir: str = Field("channels", description="Folder of channel YAML files.")
    http: HttpSettings = Field(default_factory=HttpSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    ingest_process: bool = Field(True, description="Run the listeners and the ACK path in their own process, "
                                                   "so work behind the ACK never slows an ACK (false: one process).")
    mapping_workers: int = Field(1, ge=0, le=32, description="Processes that run mappings (0: a thread of the "
                                                             "engine process, for debugging).")
    reload_interval: Duration = Field(1.0, description="How often channel files are checked for edits.")
    engine_id: str = Field("", description="Names this process in leases (default: host:pid).")
    default_timezone: str | None = Field(
        None, pattern=r"^[+-]\d\d:\d\d$|^Z$",
        description="UTC offset for v2 times without one, for every channel whose mapping sets none "
                    "(before MSH-7's own offset is used).", examples=["+07:00"])

    # Where relative paths are resolved (the settings file's folder's parent for config/simpul.yaml).
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def tariffs_path(self) -> Path:
        return _resolve(self.base_dir, self.billing.tariffs)

    def channels_path(self) -> Path:
        return _resolve(self.base_dir, self.channels_dir)

    def docs_site_path(self) -> Path | None:
        return _resolve(self.base_dir, self.http.docs_site) if self.http.docs_site else None

    def database_url(self) -> str:
        url = self.database.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + str(_resolve(self.base_dir, url[len("sqlite:///"):]))
        return url


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


ENV_OVERRIDES = {
    "SIMPUL_DATABASE_URL": ("database", "url"),
    "SIMPUL_CHANNELS_DIR": ("channels_dir",),
    "SIMPUL_HTTP_HOST": ("http", "host"),
    "SIMPUL_HTTP_PORT": ("http", "port"),
    "SIMPUL_DOCS_SITE": ("http", "docs_site"),
    "SIMPUL_LOG_LEVEL": ("log", "level"),
    "SIMPUL_LOG_FORMAT": ("log", "format"),
    "SIMPUL_SQLITE_SYNCHRONOUS": ("database", "sqlite_synchronous"),
    "SIMPUL_DEFAULT_TIMEZONE": ("default_timezone",),
}


def load_settings(path: Path | None, *, base_dir: Path | None = None) -> Settings:
    """Read settings; a missing file means defaults. Raises ConfigError with file:line:col findings."""
    data: dict = {}
    findings: list[Finding] = []
    if path is not None:
        document = load_marked(path)
        if document.findings:
            raise ConfigError(f"invalid settings in {path}", [str(f) for f in document.findings])
        data = document.data or {}
        _, findings = validate_document(document, Settings) if data else (None, [])
        if findings:
            raise ConfigError(f"invalid settings in {path}", [str(f) for f in findings])
    for variable, keys in ENV_OVERRIDES.items():
        value = os.environ.get(variable)
        if value is not None:
            node = data
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
    root = base_dir or (path.resolve().parent.parent if path is not None and path.parent.name == "config"
                        else (path.resolve().parent if path is not None else Path.cwd()))
    try:
        return Settings.model_validate({**data, "base_dir": root})
    except Exception as exc:  # an environment override with a bad value
        raise ConfigError(f"invalid settings: {exc}") from None
