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
    orders.py        simpul orders show|overdue
    access.py        simpul users create|set|list, simpul tokens create|list|revoke, simpul audit verify
    national.py      simpul bpjs sep show|retry, simpul satusehat status

Shared option types and helpers live in `common.py` and `tables.py` (public, so no command module
imports another's private names). Every user error ends with a one-line message and a non-zero exit
code, never a traceback (set SIMPUL_DEBUG=1 to see one for a genuine bug).
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer

from simpul.errors import SimpulError

# name -> (module, attribute, is a command group). The command modules load the engine, FastAPI and
# the mappings (about a second of imports), so `simpul send ...` imports only simpul/cli/send.py's
# side of the package; the full app is built for `--help`, the docs site and the tests.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "run": ("simpul.cli.run", "run", False),
    "validate": ("simpul.cli.validate", "validate", False),
    "map": ("simpul.cli.mapping", "map_message", False),
    "diff": ("simpul.cli.mapping", "diff", False),
    "send": ("simpul.cli.send", "send", False),
    "messages": ("simpul.cli.messages", "messages_app", True),
    "migrate": ("simpul.cli.migrate", "migrate", False),
    "docs": ("simpul.cli.validate", "docs", False),
    "conformance": ("simpul.cli.mapping", "conformance", False),
    "dead-letters": ("simpul.cli.dead_letters", "dead_letters_app", True),
    "destinations": ("simpul.cli.destinations", "destinations_app", True),
    "archive": ("simpul.cli.archive", "archive_app", True),
    "orders": ("simpul.cli.orders", "orders_app", True),
    "users": ("simpul.cli.access", "users_app", True),
    "tokens": ("simpul.cli.access", "tokens_app", True),
    "audit": ("simpul.cli.access", "audit_app", True),
    "reconciliation": ("simpul.cli.billing", "reconciliation_app", True),
    "billing": ("simpul.cli.billing", "billing_app", True),
    "bpjs": ("simpul.cli.national", "bpjs_app", True),
    "satusehat": ("simpul.cli.national", "satusehat_app", True),
}


def build_app(only: str | None = None) -> typer.Typer:
    """The `simpul` Typer app with every command, or with just `only` (what this process runs)."""
    # Plain (click) help: Typer's rich help prints a type such as `<bool>` after every flag.
    built = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                        rich_markup_mode=None, help="Simpul: HL7v2/FHIR integration engine.")

    @built.callback()
    def simpul() -> None:
        """Simpul: HL7v2/FHIR integration engine."""

    for name, (module, attribute, group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if group:
            built.add_typer(target, name=name)
        else:
            built.command(name)(target)
    return built


def __getattr__(name: str) -> Any:
    if name == "app":          # `from simpul.cli import app`: the whole command tree
        return build_app()
    raise AttributeError(name)


def main() -> None:
    """Entry point of the `simpul` console script."""
    wanted = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else None
    try:
        build_app(wanted)()
    except SimpulError as exc:
        findings = getattr(exc, "findings", None)
        typer.echo("\n".join(findings) if findings else f"simpul: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: say what, not a wall of frames
        if os.environ.get("SIMPUL_DEBUG"):
            raise
        typer.echo(f"simpul: internal error: {type(exc).__name__}: {exc} (SIMPUL_DEBUG=1 for details)", err=True)
        sys.exit(70)
