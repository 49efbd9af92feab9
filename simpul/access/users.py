"""Local users: create, change, list; the login check with throttling.

Password hashing is slow on purpose (argon2), so nothing here hashes inside a store transaction:
callers hash first (`hash_password`, in a thread from async code) and hand the hash in, and a login
is three steps — read the user (`login_candidate`), verify the password outside any transaction,
then record the outcome (`record_login`). The engine's single writer never waits on argon2.

There is no default user and no default password. The first admin comes from
`simpul users create NAME --admin` or from SIMPUL_ADMIN_USER/SIMPUL_ADMIN_PASSWORD at the first
start (`bootstrap_admin`); the console refuses to start with neither.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from simpul.access.roles import check_role
from simpul.dead_letters.audit import record_audit
from simpul.errors import NotFound, OperationRefused
from simpul.store.database import inserted_id
from simpul.store.rows import login_failure_row, user_row
from simpul.store.schema import login_failures, sessions, users, webauthn_credentials

ADMIN_USER_VARIABLE = "SIMPUL_ADMIN_USER"
ADMIN_PASSWORD_VARIABLE = "SIMPUL_ADMIN_PASSWORD"


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    password_hash: str
    totp_secret: str | None
    disabled: bool
    webauthn_credentials: int = 0

    @property
    def has_second_factor(self) -> bool:
        return bool(self.totp_secret) or self.webauthn_credentials > 0


def _user(connection: Connection, row: Any) -> User:
    count = connection.execute(select(func.count()).select_from(webauthn_credentials)
                               .where(webauthn_credentials.c.user_id == row.id)).scalar_one()
    return User(row.id, row.name, row.role, row.password_hash, row.totp_secret, row.disabled_at is not None,
                int(count))


def find_user(connection: Connection, name: str) -> User | None:
    row = connection.execute(select(users).where(users.c.name == name)).first()
    return _user(connection, row) if row else None


def get_user(connection: Connection, user_id: int) -> User:
    row = connection.execute(select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"no user {user_id}")
    return _user(connection, row)


def admin_exists(connection: Connection) -> bool:
    return connection.execute(select(users.c.id).where(users.c.role == "admin", users.c.disabled_at.is_(None))
                              .limit(1)).first() is not None


def create_user(connection: Connection, *, name: str, role: str, password_hash: str, actor: str,
                totp_secret: str | None = None) -> int:
    """Insert a user (the audit event names the user and role, never the password)."""
    name = name.strip()
    if not name or len(name) > 120 or any(c.isspace() for c in name) or name.startswith("token:"):
        raise OperationRefused("a user name is 1-120 characters without spaces, not starting with 'token:'")
    check_role(role)
    if find_user(connection, name) is not None:
        raise OperationRefused(f"user {name} exists already")
    user_id = inserted_id(connection.execute(users.insert().values(user_row(
        name=name, role=role, password_hash=password_hash, totp_secret=totp_secret, created_at=time.time(),
        created_by=str(actor)))))
    record_audit(connection, actor=actor, action="user.create", target=f"users:{name}", reason=None,
                 detail={"role": role, "totp": totp_secret is not None})
    return user_id


def update_user(connection: Connection, name: str, *, actor: str, role: str | None = None,
                password_hash: str | None = None, disabled: bool | None = None,
                totp_secret: str | None = None, clear_totp: bool = False) -> None:
    """Change a user; disabling (or a new password) ends their sessions. Refuses to leave no admin."""
    user = find_user(connection, name)
    if user is None:
        raise NotFound(f"no user {name}")
    values: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    if role is not None and role != user.role:
        values["role"] = changed["role"] = check_role(role)
    if password_hash is not None:
        values["password_hash"] = password_hash
        changed["password"] = "changed"
    if disabled is not None and disabled != user.disabled:
        values["disabled_at"] = time.time() if disabled else None
        changed["disabled"] = disabled
    if totp_secret is not None:
        values["totp_secret"] = totp_secret
        values["totp_last_step"] = None
        changed["totp"] = "enrolled"
    if clear_totp and user.totp_secret:
        values["totp_secret"] = None
        values["totp_last_step"] = None
        changed["totp"] = "removed"
    if not values:
        return
    connection.execute(update(users).where(users.c.id == user.id).values(**values))
    if not admin_exists(connection):
        raise OperationRefused("refused: this would leave no enabled admin")
    if "password_hash" in values or values.get("disabled_at") or "role" in values:
        connection.execute(delete(sessions).where(sessions.c.user_id == user.id))
    record_audit(connection, actor=actor, action="user.update", target=f"users:{name}", reason=None,
                 detail=changed)


def list_users(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(users.c.id, users.c.name, users.c.role, users.c.created_at, users.c.created_by,
                                     users.c.disabled_at, users.c.totp_secret).order_by(users.c.name))
    found = []
    for row in rows:
        keys = connection.execute(select(func.count()).select_from(webauthn_credentials)
                                  .where(webauthn_credentials.c.user_id == row.id)).scalar_one()
        found.append({"id": row.id, "name": row.name, "role": row.role, "created_at": row.created_at,
                      "created_by": row.created_by, "disabled": row.disabled_at is not None,
                      "totp": row.totp_secret is not None, "webauthn_keys": int(keys)})
    return found


# ---- login ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Throttle:
    max_per_user: int
    max_per_client: int
    window: float


def throttled(connection: Connection, name: str, client: str, limits: Throttle, now: float | None = None) -> str | None:
    """Why a login attempt is refused before its password is even checked, or None."""
    since = (now or time.time()) - limits.window
    f = login_failures.c
    for_user = connection.execute(select(func.count()).select_from(login_failures)
                                  .where(f.user_name == name, f.at >= since)).scalar_one()
    if for_user >= limits.max_per_user:
        return "too many failed logins for this user; try again later"
    from_client = connection.execute(select(func.count()).select_from(login_failures)
                                     .where(f.client == client, f.at >= since)).scalar_one()
    if from_client >= limits.max_per_client:
        return "too many failed logins from this address; try again later"
    return None


def login_candidate(connection: Connection, name: str) -> User | None:
    """The enabled user of that name, or None."""
    user = find_user(connection, name)
    return user if user is not None and not user.disabled else None


def record_failed_login(connection: Connection, name: str, client: str, why: str) -> None:
    connection.execute(login_failures.insert().values(login_failure_row(at=time.time(), user_name=name, client=client)))
    record_audit(connection, actor=name[:120] or "?", action="login.failed", target=f"users:{name[:100]}",
                 reason=why, detail={}, role="", client=client)


def use_totp_step(connection: Connection, user_id: int, step: int) -> bool:
    """Record that the code of `step` was used; False when that step (or a later one) was used
    already, so the same code cannot log in twice (checked and set in one statement)."""
    done = connection.execute(update(users).where(users.c.id == user_id, or_(users.c.totp_last_step.is_(None),
                                                                              users.c.totp_last_step < step))
                              .values(totp_last_step=step))
    return done.rowcount == 1


def clear_failures(connection: Connection, name: str) -> None:
    """A good login forgives that name's earlier failures (the address's stay counted)."""
    connection.execute(delete(login_failures).where(login_failures.c.user_name == name))
