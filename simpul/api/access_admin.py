"""/users, /tokens, /whoami: the admin side of access (users and API tokens), and who am I.

A new token is in the answer of the POST that made it and nowhere else: the store keeps its hash.
"""
from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from simpul.access.passwords import hash_password
from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.access.tokens import create_token, list_tokens, revoke_token
from simpul.access.users import create_user, list_users, update_user
from simpul.api.auth import requires
from simpul.api.deps import StoreDep

router = APIRouter(tags=["access"])

Role = Literal["viewer", "operator", "analyst", "admin"]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    role: Role
    password: str = Field(description="At least 12 characters; stored as an argon2id hash.")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    password: str | None = None
    disabled: bool | None = None
    remove_totp: bool = False


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120, description="What uses it, e.g. erp-reconciliation.")
    role: Role
    scope: str = Field("", description="Comma list of permissions (a subset of the role's); empty = the role's.")
    expires_in_days: float = Field(90, gt=0, le=730)


@router.get("/whoami", summary="The caller: name, role, permissions")
async def whoami(who: Principal = requires(Permission.DASHBOARD_READ)) -> dict[str, Any]:
    return {"name": who.name, "role": who.role, "kind": who.kind,
            "permissions": sorted(p.value for p in who.permissions)}


@router.get("/users", summary="Local users (no password hashes or secrets)")
async def users(store: StoreDep, _: Principal = requires(Permission.USERS_ADMIN)) -> Any:
    return await store.read(list_users)


@router.post("/users", summary="Create a user", status_code=201)
async def add_user(body: NewUser, store: StoreDep, who: Principal = requires(Permission.USERS_ADMIN)) -> Any:
    password_hash = await asyncio.to_thread(hash_password, body.password)
    user_id = await store.write(lambda c: create_user(c, name=body.name, role=body.role,
                                                      password_hash=password_hash, actor=who.actor))
    return {"id": user_id, "name": body.name, "role": body.role}


@router.patch("/users/{name}", summary="Change a user's role or password, disable or enable, remove TOTP")
async def change_user(name: str, body: UserChange, store: StoreDep,
                      who: Principal = requires(Permission.USERS_ADMIN)) -> Any:
    password_hash = await asyncio.to_thread(hash_password, body.password) if body.password else None
    await store.write(lambda c: update_user(c, name, actor=who.actor, role=body.role, password_hash=password_hash,
                                            disabled=body.disabled, clear_totp=body.remove_totp))
    return {"name": name, "changed": True}


@router.get("/tokens", summary="API tokens (never their secrets)")
async def tokens(store: StoreDep, _: Principal = requires(Permission.USERS_ADMIN)) -> Any:
    return await store.read(list_tokens)


@router.post("/tokens", summary="Make an API token; the token is shown in this answer only", status_code=201)
async def add_token(body: NewToken, store: StoreDep, who: Principal = requires(Permission.USERS_ADMIN)) -> Any:
    issued = await store.write(lambda c: create_token(c, name=body.name, role=body.role, scope=body.scope,
                                                      lifetime=body.expires_in_days * 86400, actor=who.actor))
    return {"token_id": issued.token_id, "token": issued.token, "expires_at": issued.expires_at}


@router.delete("/tokens/{token_id}", summary="Revoke a token")
async def delete_token(token_id: str, store: StoreDep, who: Principal = requires(Permission.USERS_ADMIN)) -> Any:
    await store.write(lambda c: revoke_token(c, token_id, actor=who.actor))
    return {"token_id": token_id, "revoked": True}
