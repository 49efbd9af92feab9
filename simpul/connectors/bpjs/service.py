"""What the three service clients share: errors that carry the service's own message, credentials
read only from the environment or a secrets file, a per-client rate limit, and the audit log line
each call leaves (operation and outcome only: never a path parameter, body or credential, since
card numbers and NIKs travel in paths and bodies)."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from simpul.errors import ConfigError, ConnectorRejected, ConnectorUnavailable

AUDIT = logging.getLogger("simpul.audit.national")
RETRYABLE_STATUS = {408, 425, 429}


class _HideNationalPaths(logging.Filter):
    """httpx logs every request URL at INFO; VClaim and SATUSEHAT URLs carry card numbers and NIKs.
    For the hosts these clients call, the logged URL keeps only its origin."""

    def __init__(self) -> None:
        super().__init__()
        self.origins: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL):
            url = args[1]
            origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
            if origin in self.origins:
                record.args = (args[0], f"{origin}/(path hidden)", *args[2:])
        return True


_HIDE_PATHS = _HideNationalPaths()
logging.getLogger("httpx").addFilter(_HIDE_PATHS)


def hide_paths_of(base_url: str) -> None:
    url = httpx.URL(base_url)
    _HIDE_PATHS.origins.add(f"{url.scheme}://{url.netloc.decode('ascii')}")


class ServiceRejected(ConnectorRejected):
    """The service refused the request for a business reason; `service_message` is its own text
    (BPJS metaData.message, E-Klaim metadata.message, OperationOutcome details.text).

    A service may echo patient data in that text, and the error text is logged, so the text names
    the service, operation and code only; the service's message travels as the `response` (kept on
    the delivery and the dead letter) and in the ledger. `local=True`: the refusal is ours (data
    the service requires is missing) and its text names fields, never values, so it is shown."""

    def __init__(self, service: str, operation: str, code: str, service_message: str,
                 *, response: str | None = None, local: bool = False) -> None:
        text = (f"{service} {operation}: {service_message}" if local else
                f"{service} {operation} refused (code {code}); the service's message is kept with the delivery")
        super().__init__(text, response=f"{service_message}\n{response}" if response else service_message)
        self.service = service
        self.operation = operation
        self.code = code
        self.service_message = service_message


class ServiceUnavailable(ConnectorUnavailable):
    """Retryable: transport failure, timeout, 429, 5xx, a body that could not be read."""


def read_secrets(names: list[str], *, secrets_file: str | None) -> dict[str, str]:
    """Each name from the secrets file (KEY=VALUE lines, # comments) or else the environment.

    A missing name is a ConfigError that names the variable, never its value."""
    found: dict[str, str] = {}
    if secrets_file:
        path = Path(secrets_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"secrets file {path}: cannot read ({exc.strerror})") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                found[key.strip()] = value.strip().strip('"').strip("'")
    result: dict[str, str] = {}
    for name in names:
        value = found.get(name) or os.environ.get(name) or ""
        if not value:
            where = f"secrets file {secrets_file} or " if secrets_file else ""
            raise ConfigError(f"credential {name} is not set (looked in {where}the environment)")
        result[name] = value
    return result


class RateLimit:
    """At most `per_second` calls per second from this client (0 = unlimited); callers queue."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


@dataclass(frozen=True, slots=True)
class CallRecord:
    service: str
    operation: str
    outcome: str          # ok | refused | unavailable
    code: str
    seconds: float


def audit(record: CallRecord) -> None:
    AUDIT.info("national service call service=%s operation=%s outcome=%s code=%s seconds=%.3f",
               record.service, record.operation, record.outcome, record.code, record.seconds)


def transport_error(service: str, operation: str, exc: httpx.HTTPError) -> ServiceUnavailable:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    return ServiceUnavailable(f"{service} {operation}: {kind} ({type(exc).__name__})")


def status_error(service: str, operation: str, response: httpx.Response,
                 detail: str = "") -> ServiceUnavailable | None:
    """A retryable HTTP status as an error, or None when the status is not retryable."""
    status = response.status_code
    if status >= 500 or status in RETRYABLE_STATUS:
        after = response.headers.get("Retry-After")
        hint = f", retry after {after}s" if after else ""
        return ServiceUnavailable(f"{service} {operation}: HTTP {status}{hint}{detail}", response=response.text[:4096])
    return None


def header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)
