"""The composition root: one engine wired with the layers above it.

The engine (simpul/engine) knows nothing of the operations layer (dead letters, retention) or of
the HTTP API; this module is the one place that puts them together, so every way of starting an
engine (`simpul run`, the tests' harness) gets the same one.
"""
from __future__ import annotations

from simpul.billing.job import run_billing
from simpul.dead_letters.retention import run_retention_periodically
from simpul.engine.config.settings import Settings
from simpul.api import create_app
from simpul.engine.runtime import Engine


def build_engine(settings: Settings) -> Engine:
    """An engine with retention (for channels with `retention:`), billing (when enabled) and the HTTP API."""
    return Engine(settings, background_jobs={"retention": run_retention_periodically,
                                                 "billing": run_billing}, http_app=create_app)
