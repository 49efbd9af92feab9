"""The durable store: messages, deliveries, ACKs, dead letters and audit events.

The store is also the queue in the embedded profile: a delivery row is a work item with a
lease. SQLite (WAL, synchronous=FULL) by default; PostgreSQL by URL.

A layer of its own: it imports only the standard library, SQLAlchemy, alembic and
simpul.errors, never the engine, connectors, mappings or dead letters. `schema` declares the
tables, `status` their status values, `rows` the typed rows and row builders, `writer` the
group-committing single writer, `database` opens a database and `migrations` upgrades it.
"""
