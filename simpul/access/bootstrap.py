"""The first admin: no default user and no default password, ever.

The console starts only when an enabled admin exists. One comes from `simpul users create NAME
--admin`, or, at the first start, from SIMPUL_ADMIN_USER and SIMPUL_ADMIN_PASSWORD (the variables
are read only while no admin exists, so leaving them set later changes nothing).
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.engine import Engine as Database
from sqlalchemy.exc import IntegrityError

from simpul.access.passwords import hash_password
from simpul.access.users import ADMIN_PASSWORD_VARIABLE, ADMIN_USER_VARIABLE, admin_exists, create_user
from simpul.dead_letters.audit import Actor
from simpul.errors import ConfigError, OperationRefused

NO_ADMIN = (f"the console needs an admin and there is none: create one with `simpul users create NAME --admin`, "
            f"or set {ADMIN_USER_VARIABLE} and {ADMIN_PASSWORD_VARIABLE} for the first start")


def ensure_admin(db: Database, environ: Mapping[str, str]) -> str | None:
    """Make sure an admin exists; returns the name created from the environment, if one was.

    Blocking (argon2 and the store): call it from a thread in async code."""
    with db.connect() as connection:
        if admin_exists(connection):
            return None
    name, password = environ.get(ADMIN_USER_VARIABLE, "").strip(), environ.get(ADMIN_PASSWORD_VARIABLE, "")
    if not name or not password:
        raise ConfigError(NO_ADMIN)
    try:
        password_hash = hash_password(password)
        with db.begin() as connection:
            if admin_exists(connection):        # another process made one meanwhile
                return None
            create_user(connection, name=name, role="admin", password_hash=password_hash,
                        actor=Actor("bootstrap", role="system", client=ADMIN_USER_VARIABLE))
    except OperationRefused as exc:
        raise ConfigError(f"{ADMIN_USER_VARIABLE}/{ADMIN_PASSWORD_VARIABLE}: {exc}") from None
    except IntegrityError:
        # Several engine processes started together on one PostgreSQL store: another one inserted
        # the same user between our check and our insert. Its admin is as good as ours.
        with db.connect() as connection:
            if admin_exists(connection):
                return None
        raise
    return name
