"""`simpul run`: an engine from the composition root (simpul/app.py: the HTTP API and retention
wired in), run until SIGTERM or SIGINT."""
from __future__ import annotations

import asyncio
import signal

from simpul.app import build_engine
from simpul.cli.common import ConfigOption, fail, settings_from
from simpul.engine.config.settings import Settings
from simpul.engine.logs import configure_logging
from simpul.errors import ConfigError, StoreError


def run(config: ConfigOption = None) -> None:
    """Run the engine: MLLP listeners, processing, delivery, HTTP (/healthz, /metrics, /api/v1)."""
    try:
        settings = settings_from(config)
    except ConfigError as exc:
        fail("\n".join(exc.findings), 2)
    site = settings.docs_site_path()
    if site is not None and not (site / "index.html").is_file():
        fail(f"simpul: refusing to start: http.docs_site: {site} holds no built site (run `mkdocs build` first)", 2)
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(_serve(settings))
    except ConfigError as exc:
        fail("simpul: refusing to start:\n" + "\n".join(exc.findings), 2)
    except StoreError as exc:       # e.g. the store cannot commit durably
        fail(f"simpul: refusing to start: {exc}", 2)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"simpul: cannot start: {exc.strerror or exc}", 2)


async def _serve(settings: Settings) -> None:
    engine = build_engine(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await engine.start()
    try:
        await stop.wait()
    finally:
        await engine.stop()
