"""Alembic environment: Simpul passes an open connection in, so no alembic.ini is needed."""
from alembic import context

from simpul.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
