"""`simpul migrate`: create or upgrade the store's schema."""
from __future__ import annotations

import typer

from simpul.cli.common import ConfigOption, settings_from
from simpul.store.database import open_database


def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the store's schema (simpul run does this too)."""
    settings = settings_from(config)
    open_database(settings.database_url()).dispose()
    typer.echo("store schema is up to date", err=True)
