"""The engine's half of `simpul diff`: a channel's latest stored messages, as the mapping stage
reads them (the comparison itself is simpul/mappings/diff.py)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from simpul.engine.channel_runtime import ChannelRuntime
from simpul.engine.processor import MESSAGE_COLUMNS, message_fields
from simpul.store.database import open_database
from simpul.store.schema import messages
from simpul.store.status import MessageStatus
from simpul.v2 import decode_message

# Messages a channel has taken or may still take; rejected ones never reach a mapping.
_MAPPABLE = (MessageStatus.ROUTED, MessageStatus.UNROUTED, MessageStatus.RECEIVED)


def stored_messages(settings: Any, runtime: ChannelRuntime, last: int) -> list[tuple[str, str]]:
    """The channel's latest `last` stored messages (those its filter takes) as (label, text), oldest first."""
    engine = open_database(settings.database_url(), sqlite_synchronous=settings.database.sqlite_synchronous)
    out: list[tuple[str, str]] = []
    try:
        with engine.connect() as connection:
            query = select(*MESSAGE_COLUMNS).where(messages.c.status.in_(_MAPPABLE)) \
                .order_by(messages.c.id.desc()).execution_options(yield_per=500)
            for row in connection.execute(query):
                if runtime.accepts(message_fields(row)):
                    # The codec ingest decoded these bytes with, as the mapping stage reads them.
                    text, _ = decode_message(row.raw, "", default=row.charset or "utf-8")
                    out.append((f"message {row.id} {row.message_type} {row.control_id}", text))
                    if len(out) >= last:
                        break
    finally:
        engine.dispose()
    return out[::-1]
