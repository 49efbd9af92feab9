"""`simpul messages search`: find stored messages."""
from __future__ import annotations

from typing import Annotated, Optional

import orjson
import typer

from simpul.cli.common import (
    ConfigOption, ControlIdOption, PatientOption, TypeOption, actor_or_user, fail, format_time, parse_when,
    settings_from,
)
from simpul.dead_letters.audit import record_audit
from simpul.cli.tables import Column, print_table
from simpul.engine.search import MessageQuery, search_messages
from simpul.store.database import open_database
from simpul.errors import ConfigError

messages_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Find stored messages.")

# Identifiers and the status stay longest on a narrow terminal; the deliveries summary wraps.
MESSAGE_COLUMNS = (
    Column("id", priority=5), Column("received (UTC)", priority=2), Column("type", priority=4),
    Column("control id", priority=6), Column("sender", priority=0), Column("patient", priority=5),
    Column("status", priority=6), Column("ack", priority=3), Column("deliveries", priority=1, wrap=True),
)


@messages_app.command("search")
def search(patient_id: PatientOption = None, control_id: ControlIdOption = None, message_type: TypeOption = None,
           status: Annotated[Optional[str], typer.Option(help="received, routed, unrouted, rejected.")] = None,
           accession: Annotated[Optional[str], typer.Option(help="Accession number.")] = None,
           visit: Annotated[Optional[str], typer.Option(help="Visit number (PV1-19).")] = None,
           since: Annotated[Optional[str], typer.Option(help="From (ISO time or e.g. 2h ago).")] = None,
           until: Annotated[Optional[str], typer.Option(help="Until (ISO time or a duration ago).")] = None,
           limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
           config: ConfigOption = None) -> None:
    """Find messages by patient, control id, type, status and time window (newest first).

    A terminal gets a table; a pipe gets tab-separated rows with a header line.
    """
    try:
        settings = settings_from(config)
    except ConfigError as exc:
        fail("\n".join(exc.findings), 2)
    query = MessageQuery(patient_id=patient_id, control_id=control_id, message_type=message_type, status=status,
                         accession_number=accession, visit_number=visit, since=parse_when(since),
                         until=parse_when(until), limit=limit)
    db = open_database(settings.database_url(), sqlite_synchronous=settings.database.sqlite_synchronous)
    try:
        with db.connect() as connection:
            rows = search_messages(connection, query)
        if rows:    # a search that shows patient data is an audit event, from the shell too
            with db.begin() as connection:
                record_audit(connection, actor=actor_or_user(None), action="message.search", target="messages",
                             reason=None, detail={"filter": query.criteria(), "found": len(rows)})
    finally:
        db.dispose()
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    table = [[str(row["id"]), format_time(row["received_at"]), row["message_type"], row["control_id"],
              row["sending_application"].split("^")[0], row["patient_id"], row["status"], row["ack_code"],
              ", ".join(f"{d['channel']}/{d['destination']}:{d['status']}" for d in row["deliveries"])]
             for row in rows]
    print_table(MESSAGE_COLUMNS, table, title=f"{len(rows)} message(s)")
