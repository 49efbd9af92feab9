"""What every command prints the same way: a one-line failure, times, JSON. Imports only typer
and orjson, so a command that needs no settings or store starts quickly."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NoReturn

import orjson
import typer


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def format_time(value: float | None) -> str:
    """Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC); empty for None."""
    if value is None:
        return ""
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
