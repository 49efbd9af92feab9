"""Alembic migrations of the store (run by `simpul run` at start-up and by `simpul migrate`)."""
