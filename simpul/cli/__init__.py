"""The `simpul` command: one Typer app, one module per command group.

    run.py           simpul run (the composition root: engine + HTTP API)
    validate.py      simpul validate, simpul docs
    mapping.py       simpul map, simpul conformance
    send.py          simpul send
    messages.py      simpul messages search
    migrate.py       simpul migrate
    dead_letters.py  simpul dead-letters list|counts|show|replay|edit|discard|audit
    destinations.py  simpul destinations pause|resume|status
    archive.py       simpul archive run|list|restore

Shared option types and helpers live in `common.py` and `tables.py` (public, so no command module
imports another's private names). Every user error ends with a one-line message and a non-zero exit
code, never a traceback (set SIMPUL_DEBUG=1 to see one for a genuine bug).
"""
from __future__ import annotations

import os
import sys

import typer

from simpul.cli.archive import archive_app
from simpul.cli.dead_letters import dead_letters_app
from simpul.cli.destinations import destinations_app
from simpul.cli.mapping import conformance, diff, map_message
from simpul.cli.messages import messages_app
from simpul.cli.migrate import migrate
from simpul.cli.run import run
from simpul.cli.send import send
from simpul.cli.validate import docs, validate
from simpul.errors import SimpulError

# Plain (click) help: Typer's rich help prints a type such as `<bool>` after every flag.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Simpul: HL7v2/FHIR integration engine.")
app.command()(run)
app.command()(validate)
app.command("map")(map_message)
app.command()(diff)
app.command()(send)
app.add_typer(messages_app, name="messages")
app.command()(migrate)
app.command()(docs)
app.command()(conformance)
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(destinations_app, name="destinations")
app.add_typer(archive_app, name="archive")


def main() -> None:
    """Entry point of the `simpul` console script."""
    try:
        app()
    except SimpulError as exc:
        findings = getattr(exc, "findings", None)
        typer.echo("\n".join(findings) if findings else f"simpul: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: say what, not a wall of frames
        if os.environ.get("SIMPUL_DEBUG"):
            raise
        typer.echo(f"simpul: internal error: {type(exc).__name__}: {exc} (SIMPUL_DEBUG=1 for details)", err=True)
        sys.exit(70)
