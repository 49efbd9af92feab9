"""Console sessions: a random cookie value, stored as its SHA-256 (a copy of the table does not
let anyone log in), with a per-session CSRF token, an absolute lifetime and an idle timeout.

A session opened with a password alone is *pending* when the user must pass a second factor: it
authenticates only the second-factor pages until `mark_second_factor` records the factor.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from simpul.errors import OperationRefused
from simpul.store.rows import session_row
from simpul.store.schema import sessions, users, webauthn_credentials


@dataclass(frozen=True)
class Session:
    id: str
    user_id: int
    user_name: str
    role: str
    csrf_token: str
    second_factor: str
    client: str
    challenge: str | None
    last_seen_at: float
    has_second_factor: bool     # the user has enrolled TOTP or a WebAuthn key


def session_key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def open_session(connection: Connection, user_id: int, client: str, lifetime: float) -> tuple[str, str]:
    """A new session; returns (cookie value, csrf token)."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    connection.execute(sessions.insert().values(session_row(id=session_key(cookie), user_id=user_id, csrf_token=csrf,
                                                            created_at=now, expires_at=now + lifetime, client=client)))
    return cookie, csrf


def find_session(connection: Connection, cookie: str, idle_timeout: float, now: float | None = None) -> Session | None:
    now = now or time.time()
    s, u = sessions.c, users.c
    row = connection.execute(select(s.id, s.user_id, u.name, u.role, s.csrf_token, s.second_factor, s.client,
                                    s.challenge, s.expires_at, s.last_seen_at, u.disabled_at, u.totp_secret)
                             .join(users, users.c.id == s.user_id).where(s.id == session_key(cookie))).first()
    if row is None or row.expires_at <= now or row.last_seen_at + idle_timeout <= now or row.disabled_at:
        return None
    keys = connection.execute(select(func.count()).select_from(webauthn_credentials)
                              .where(webauthn_credentials.c.user_id == row.user_id)).scalar_one()
    return Session(row.id, row.user_id, row.name, row.role, row.csrf_token, row.second_factor, row.client,
                   row.challenge, row.last_seen_at, bool(row.totp_secret) or keys > 0)


def touch_session(connection: Connection, session_id: str) -> None:
    connection.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=time.time()))


def mark_second_factor(connection: Connection, session_id: str, factor: str) -> None:
    connection.execute(update(sessions).where(sessions.c.id == session_id).values(second_factor=factor,
                                                                                  challenge=None))


def set_challenge(connection: Connection, session_id: str, challenge: str | None) -> None:
    connection.execute(update(sessions).where(sessions.c.id == session_id).values(challenge=challenge))


def close_session(connection: Connection, session_id: str) -> None:
    connection.execute(delete(sessions).where(sessions.c.id == session_id))


def get_challenge(connection: Connection, session_id: str, kind: str) -> str:
    """The pending challenge of `kind` (e.g. "webauthn-login:") in this session; refused if there is none."""
    value = connection.execute(select(sessions.c.challenge).where(sessions.c.id == session_id)).scalar()
    if not value or not str(value).startswith(kind):
        raise OperationRefused("no challenge is waiting: ask for new options first")
    return str(value)[len(kind):]
