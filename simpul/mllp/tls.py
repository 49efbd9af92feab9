"""TLS for MLLP: the listener's settings model and SSL contexts for both ends.

TLS 1.2 is the floor; TLS 1.3 is negotiated whenever the peer supports it (OpenSSL picks the highest
common version). Setting ``ca`` on the listener turns on mutual TLS: clients must present a
certificate issued by that CA or the handshake fails.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from simpul.errors import ConfigError

__all__ = ["TlsSettings", "server_ssl_context", "client_ssl_context"]

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsSettings(BaseModel):
    """TLS for an MLLP listener."""

    model_config = ConfigDict(extra="forbid")

    cert: Path = Field(description="PEM file with the server certificate (and its chain).",
                       examples=["/etc/simpul/tls/mllp.crt"])
    key: Path | None = Field(default=None,
                             description="PEM file with the private key; omit when it is in `cert`.",
                             examples=["/etc/simpul/tls/mllp.key"])
    ca: Path | None = Field(default=None,
                            description="PEM file of the CA that signs client certificates. When set, "
                                        "clients must present a certificate (mutual TLS).")
    min_version: Literal["1.2", "1.3"] = Field(default="1.2",
                                               description="Lowest TLS version accepted.")


def server_ssl_context(settings: TlsSettings) -> ssl.SSLContext:
    """Build the listener's SSL context; unreadable files raise :class:`ConfigError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[settings.min_version]
    try:
        context.load_cert_chain(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate/key {settings.cert}: "
                          f"{type(exc).__name__}") from exc
    if settings.ca is not None:
        try:
            context.load_verify_locations(cafile=settings.ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS client CA {settings.ca}: "
                              f"{type(exc).__name__}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_ssl_context(ca: str | Path | None = None, cert: str | Path | None = None,
                       key: str | Path | None = None) -> ssl.SSLContext:
    """Build a client context that verifies the server (against ``ca`` or the system store).

    ``cert``/``key`` give the client certificate for mutual TLS.
    """
    try:
        context = ssl.create_default_context(cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS client files: {type(exc).__name__}") from exc
    return context
