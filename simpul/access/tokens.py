"""API tokens for machines (the ERP pulling reconciliations, monitoring): a role, a scope and an expiry.

A token reads `simpul_<token_id>_<secret>`. The token id is public (it finds the row and names the
token in lists and the audit trail); only the SHA-256 of the secret is stored, and the whole token
is shown once, when it is made. SHA-256 and not argon2: the secret is 256 random bits, so there is
nothing to guess slowly, and every API call checks one.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from simpul.access.roles import check_role, parse_scope, permissions_of
from simpul.dead_letters.audit import record_audit
from simpul.errors import NotFound, OperationRefused
from simpul.store.rows import api_token_row
from simpul.store.schema import api_tokens

PREFIX = "simpul_"
MAX_LIFETIME = 2 * 365 * 86400.0


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str              # shown once
    expires_at: float


@dataclass(frozen=True)
class TokenHolder:
    token_id: str
    name: str
    role: str
    scope: str

    @property
    def permissions(self) -> frozenset[Any]:
        return permissions_of(self.role, self.scope)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(connection: Connection, *, name: str, role: str, scope: str | None, lifetime: float,
                 actor: str) -> IssuedToken:
    check_role(role)
    stored_scope = parse_scope(scope, role)
    if not name.strip():
        raise OperationRefused("a token needs a name (what uses it, e.g. erp-reconciliation)")
    if not 0 < lifetime <= MAX_LIFETIME:
        raise OperationRefused("a token expires within 2 years (give --expires, e.g. 90d)")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    now = time.time()
    connection.execute(api_tokens.insert().values(api_token_row(
        token_id=token_id, secret_hash=_digest(secret), name=name.strip(), role=role, scope=stored_scope,
        created_at=now, created_by=str(actor), expires_at=now + lifetime)))
    record_audit(connection, actor=actor, action="token.create", target=f"tokens:{token_id}", reason=None,
                 detail={"name": name, "role": role, "scope": stored_scope, "expires_at": now + lifetime})
    return IssuedToken(token_id, f"{PREFIX}{token_id}_{secret}", now + lifetime)


def split_token(token: str) -> tuple[str, str] | None:
    if not token.startswith(PREFIX):
        return None
    token_id, _, secret = token[len(PREFIX):].partition("_")
    return (token_id, secret) if token_id and secret else None


def check_token(connection: Connection, token: str, now: float | None = None) -> TokenHolder | None:
    """The holder of a valid (known, unrevoked, unexpired) token, or None. Read-only."""
    parts = split_token(token)
    if parts is None:
        return None
    token_id, secret = parts
    row = connection.execute(select(api_tokens).where(api_tokens.c.token_id == token_id)).first()
    if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
        return None
    if row.revoked_at is not None or row.expires_at <= (now or time.time()):
        return None
    return TokenHolder(row.token_id, row.name, row.role, row.scope)


def revoke_token(connection: Connection, token_id: str, *, actor: str) -> None:
    done = connection.execute(update(api_tokens).where(api_tokens.c.token_id == token_id,
                                                       api_tokens.c.revoked_at.is_(None))
                              .values(revoked_at=time.time()))
    if done.rowcount == 0:
        raise NotFound(f"no active token {token_id}")
    record_audit(connection, actor=actor, action="token.revoke", target=f"tokens:{token_id}", reason=None, detail={})


def list_tokens(connection: Connection) -> list[dict[str, Any]]:
    t = api_tokens.c
    rows = connection.execute(select(t.token_id, t.name, t.role, t.scope, t.created_at, t.created_by, t.expires_at,
                                     t.revoked_at).order_by(t.created_at.desc()))
    now = time.time()
    return [{**{str(k): v for k, v in row._mapping.items()},
             "state": "revoked" if row.revoked_at else "expired" if row.expires_at <= now else "active"}
            for row in rows]
