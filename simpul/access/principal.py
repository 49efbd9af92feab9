"""The authenticated caller: a user (console session) or a machine (API token)."""
from __future__ import annotations

from dataclasses import dataclass

from simpul.access.roles import Permission
from simpul.dead_letters.audit import Actor


@dataclass(frozen=True)
class Principal:
    name: str                     # user name, or "token:<name>"
    role: str
    permissions: frozenset[Permission]
    client: str                   # the client's address
    kind: str                     # "session" | "token"
    user_id: int | None = None
    session_id: str | None = None
    csrf_token: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def actor(self) -> Actor:
        """This caller as the audit trail records it (name, role, address)."""
        return Actor(self.name, role=self.role, client=self.client)
