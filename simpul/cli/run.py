"""`simpul run`: the composition root. The engine does not know the HTTP API that sits on top
of it; this command builds both and hands the API's app factory to the engine."""
from __future__ import annotations

import asyncio
import signal

from simpul.api import create_app
from simpul.cli.common import ConfigOption, fail, settings_from
from simpul.engine.config.settings import Settings
from simpul.engine.logs import configure_logging
from simpul.engine.runtime import Engine
from simpul.errors import ConfigError


def run(config: ConfigOption = None) -> None:
    """Run the engine: MLLP listeners, processing, delivery, HTTP (/healthz, /metrics, /api/v1)."""
    try:
        settings = settings_from(config)
    except ConfigError as exc:
        fail("\n".join(exc.findings), 2)
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(_serve(settings))
    except ConfigError as exc:
        fail("simpul: refusing to start:\n" + "\n".join(exc.findings), 2)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"simpul: cannot start: {exc.strerror or exc}", 2)


async def _serve(settings: Settings) -> None:
    engine = Engine(settings, http_app=create_app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await engine.start()
    try:
        await stop.wait()
    finally:
        await engine.stop()
