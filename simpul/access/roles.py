"""Roles and permissions: least privilege, spelled out once.

Every /api/v1 route and console page declares one permission (simpul/api/auth.py refuses to build
an app with a route that does not). A role is a set of permissions; a token's scope narrows its
role's set further (a monitoring token: role viewer, scope `dashboard.read`).

    viewer     dashboards and counts, never message content or patient identifiers
    operator   viewer + message content and search, replay, edit, discard, pause/resume, reconciliation
    analyst    viewer + channels, mappings, diff
    admin      everything, including users, tokens and the audit trail
"""
from __future__ import annotations

from enum import StrEnum

from simpul.errors import OperationRefused


class Permission(StrEnum):
    DASHBOARD_READ = "dashboard.read"          # counts per channel/destination, destination state
    MESSAGES_READ = "messages.read"            # message content and search results (patient data)
    DEAD_LETTERS_READ = "dead_letters.read"    # dead letter lists and bodies (patient data)
    DEAD_LETTERS_WRITE = "dead_letters.write"  # replay, edit-and-replay, discard
    DESTINATIONS_WRITE = "destinations.write"  # pause, resume
    ARCHIVES_READ = "archives.read"            # archive index by control/patient id (patient data)
    ARCHIVES_WRITE = "archives.write"          # retention run, restore
    CHANNELS_READ = "channels.read"            # channel files, mappings, diff
    AUDIT_READ = "audit.read"
    RECONCILIATION_READ = "reconciliation.read"  # invoices, their state, work items, the report (the ERP's pull)
    BILLING_WRITE = "billing.write"              # resolve a reconciliation work item, invoice an account now
    USERS_ADMIN = "users.admin"                # users and tokens


VIEWER = frozenset({Permission.DASHBOARD_READ})
ROLES: dict[str, frozenset[Permission]] = {
    "viewer": VIEWER,
    "operator": VIEWER | {Permission.MESSAGES_READ, Permission.DEAD_LETTERS_READ, Permission.DEAD_LETTERS_WRITE,
                          Permission.DESTINATIONS_WRITE, Permission.ARCHIVES_READ, Permission.ARCHIVES_WRITE,
                          Permission.RECONCILIATION_READ, Permission.BILLING_WRITE},
    "analyst": VIEWER | {Permission.CHANNELS_READ},
    "admin": frozenset(Permission),
}

# Permissions that show patient data: a role holding any of them must pass a second factor when
# `auth.require_mfa` is set.
PATIENT_DATA = frozenset({Permission.MESSAGES_READ, Permission.DEAD_LETTERS_READ, Permission.ARCHIVES_READ})


def check_role(role: str) -> str:
    if role not in ROLES:
        raise OperationRefused(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return role


def parse_scope(scope: str | None, role: str) -> str:
    """A token scope as stored: "" (all of the role's permissions) or a sorted comma list, each one
    a permission the role has (a scope never widens a role)."""
    if not scope or scope.strip() in ("", "*"):
        return ""
    wanted = {part.strip() for part in scope.split(",") if part.strip()}
    known = {p.value for p in Permission}
    unknown = sorted(wanted - known)
    if unknown:
        raise OperationRefused(f"unknown permission(s) in scope: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    beyond = sorted(wanted - {p.value for p in ROLES[check_role(role)]})
    if beyond:
        raise OperationRefused(f"role {role} does not have {', '.join(beyond)}; a scope only narrows a role")
    return ",".join(sorted(wanted))


def permissions_of(role: str, scope: str = "") -> frozenset[Permission]:
    granted = ROLES.get(role, frozenset())
    if scope:
        granted = granted & {Permission(p) for p in scope.split(",") if p in Permission.__members__.values()}
    return frozenset(granted)


def sees_patient_data(role: str) -> bool:
    return bool(ROLES.get(role, frozenset()) & PATIENT_DATA)
