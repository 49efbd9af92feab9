"""The alembic revisions build exactly the schema store/schema.py declares, on both backends.

A schema change without a revision (or a revision that drifts from the tables) would make a
fresh install and an upgraded install differ; `compare_metadata` catches both.
"""
from __future__ import annotations

import warnings
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from simpul.store.database import open_database
from simpul.store.migrate import alembic_config
from simpul.store.schema import metadata


def _differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as connection, warnings.catch_warnings():
        # SQLAlchemy cannot reflect expression indexes on SQLite (it says so and skips them);
        # `_expression_indexes` checks that one instead.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def _expression_indexes(engine: sa.Engine) -> dict[str, str]:
    """Index name -> its definition as the database keeps it, for the indexes on an expression."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                              "AND sql LIKE '%coalesce%'"))
        else:
            rows = connection.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes "
                                              "WHERE indexdef LIKE '%COALESCE%'"))
        return {name: " ".join(sql.lower().split()) for name, sql in rows}


def _snapshot(engine: sa.Engine) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        inspector = sa.inspect(engine)
        return _tables(inspector)


def _tables(inspector: Any) -> dict[str, Any]:
    return {table: ([(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                    sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)))
            for table in sorted(inspector.get_table_names())}


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_fresh_database_matches_the_declared_schema(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        assert _differences(engine) == []
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert _revision(engine) == head
        assert set(metadata.tables) <= set(sa.inspect(engine).get_table_names())
        # The claim's index on the FIFO position (an expression: compare_metadata skips it on SQLite).
        definition = _expression_indexes(engine)["ix_deliveries_key_queue"]
        assert "(channel, destination, status, order_key, coalesce(ordered_as, id), id)" in definition
    finally:
        engine.dispose()


def test_opening_twice_is_a_no_op_and_keeps_the_data(database_url: str) -> None:
    first = open_database(database_url)
    try:
        before = _snapshot(first)
        revision = _revision(first)
        with first.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO messages (received_at, source, status, sending_application, sending_facility,"
                " receiving_application, receiving_facility, message_type, control_id, version_id, charset,"
                " content_hash, patient_id, visit_number, placer_number, filler_number, accession_number,"
                " raw, ack_code, duplicates) VALUES (1.0, 'mllp:test', 'routed', '', '', '', '', 'ADT^A01',"
                " 'KEEP-1', '2.5.1', 'utf-8', '', '', '', '', '', '', :raw, 'AA', 0)"), {"raw": b"MSH|^~\\&|\r"})
    finally:
        first.dispose()

    second = open_database(database_url)
    try:
        assert _snapshot(second) == before
        assert _revision(second) == revision
        assert _differences(second) == []
        with second.connect() as connection:
            kept = connection.execute(sa.text("SELECT control_id FROM messages")).scalars().all()
            versions = connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one()
        assert kept == ["KEEP-1"]
        assert versions == 1
    finally:
        second.dispose()
