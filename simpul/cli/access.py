"""`simpul users ...`, `simpul tokens ...`, `simpul audit ...`: access and the audit trail, on the store.

These work on the store directly (like `simpul dead-letters`), so the first admin can be made
before the console ever starts, and an admin locked out of the console can still get back in.
Passwords are read from the terminal (twice) or, for scripts, from stdin with --password-stdin;
never from an argument, which `ps` and shell history would show.
"""
from __future__ import annotations

import sys
import time
from typing import Annotated, Optional

import typer

from simpul.access.passwords import hash_password
from simpul.access.roles import ROLES
from simpul.access.tokens import create_token, list_tokens, revoke_token
from simpul.access.totp import new_secret, provisioning_uri
from simpul.access.users import create_user, list_users, update_user
from simpul.cli.common import (
    ActorOption, ConfigOption, JsonOption, actor_or_user, fail, format_time, print_json, store_session,
)
from simpul.config_types import parse_duration
from simpul.dead_letters.audit import verify_chain
from simpul.dead_letters.retention import archived_chain_heads
from simpul.errors import OperationRefused

users_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Console users: create, change, list.")
tokens_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="API tokens for machines: create (shown once), list, revoke.")
audit_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The audit trail: verify the hash chain.")

RoleOption = Annotated[Optional[str], typer.Option(help=f"One of {', '.join(ROLES)}.")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin "
                                             "(one line), for scripts.")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password: pipe it in with --password-stdin", 2)
    first = typer.prompt("Password", hide_input=True)
    if typer.prompt("Again", hide_input=True) != first:
        fail("the passwords differ", 1)
    return str(first)


def _hashed(password: str) -> str:
    try:
        return hash_password(password)
    except OperationRefused as exc:
        fail(f"refused: {exc}", 1)


@users_app.command("create")
def users_create(name: str, role: RoleOption = None,
                 admin: Annotated[bool, typer.Option("--admin", help="Same as --role admin.")] = False,
                 totp: Annotated[bool, typer.Option("--totp", help="Enrol a TOTP second factor now and print "
                                                    "its otpauth:// URI and secret (shown once).")] = False,
                 password_stdin: PasswordStdin = False, actor: ActorOption = None,
                 config: ConfigOption = None) -> None:
    """Create a console user (the first admin: `simpul users create NAME --admin`)."""
    chosen = "admin" if admin else role
    if chosen is None:
        fail("give --role (viewer, operator, analyst, admin) or --admin", 2)
    password_hash = _hashed(_password(password_stdin))
    secret = new_secret() if totp else None
    with store_session(config) as session:
        session.write(lambda c: create_user(c, name=name, role=chosen, password_hash=password_hash,
                                            actor=actor_or_user(actor), totp_secret=secret))
    typer.echo(f"created user {name} ({chosen})")
    if secret:
        typer.echo(f"TOTP secret: {secret}")
        typer.echo(f"otpauth URI: {provisioning_uri(secret, name)}")


@users_app.command("set")
def users_set(name: str, role: RoleOption = None,
              password: Annotated[bool, typer.Option("--password", help="Set a new password (asked for).")] = False,
              disable: Annotated[bool, typer.Option("--disable", help="Refuse logins; end sessions.")] = False,
              enable: Annotated[bool, typer.Option("--enable")] = False,
              totp: Annotated[bool, typer.Option("--totp", help="Enrol a new TOTP secret (printed once).")] = False,
              remove_totp: Annotated[bool, typer.Option("--remove-totp")] = False,
              password_stdin: PasswordStdin = False, actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Change a user's role or password, disable/enable them, enrol or remove TOTP."""
    if disable and enable:
        fail("--disable or --enable, not both", 2)
    password_hash = _hashed(_password(password_stdin)) if password or password_stdin else None
    secret = new_secret() if totp else None
    with store_session(config) as session:
        session.write(lambda c: update_user(c, name, actor=actor_or_user(actor), role=role, password_hash=password_hash,
                                            disabled=True if disable else False if enable else None,
                                            totp_secret=secret, clear_totp=remove_totp))
    typer.echo(f"updated user {name}")
    if secret:
        typer.echo(f"TOTP secret: {secret}")
        typer.echo(f"otpauth URI: {provisioning_uri(secret, name)}")


@users_app.command("list")
def users_list(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Users with role, second factors and state (no secrets)."""
    with store_session(config) as session:
        found = session.read(list_users)
    if json_output:
        print_json(found)
        return
    for user in found:
        factors = ",".join(f for f, on in (("totp", user["totp"]), ("webauthn", user["webauthn_keys"])) if on) or "-"
        typer.echo(f"{user['name']:<20} {user['role']:<9} {factors:<14} "
                   f"{'disabled' if user['disabled'] else 'enabled':<9} created {format_time(user['created_at'])}")


@tokens_app.command("create")
def tokens_create(name: str, role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
                  scope: Annotated[str, typer.Option(help="Comma list of permissions (narrows the role), "
                                                          "e.g. dashboard.read.")] = "",
                  expires: Annotated[str, typer.Option(help="Lifetime, e.g. 90d, 12h.")] = "90d",
                  actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Make an API token. It is printed once, here; the store keeps only its hash."""
    try:
        lifetime = parse_duration(expires)
    except ValueError:
        fail(f"--expires '{expires}' is not a duration such as 90d", 2)
    with store_session(config) as session:
        issued = session.write(lambda c: create_token(c, name=name, role=role, scope=scope, lifetime=lifetime,
                                                      actor=actor_or_user(actor)))
    typer.echo(f"token {issued.token_id} for {name} ({role}), expires {format_time(issued.expires_at)}:", err=True)
    typer.echo(issued.token)


@tokens_app.command("list")
def tokens_list(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Tokens with role, scope, expiry and state (never the secret)."""
    with store_session(config) as session:
        found = session.read(list_tokens)
    if json_output:
        print_json(found)
        return
    for token in found:
        typer.echo(f"{token['token_id']}  {token['name']:<24} {token['role']:<9} {token['state']:<8} "
                   f"expires {format_time(token['expires_at'])}  scope {token['scope'] or '(role)'}")


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Revoke a token at once (calls with it answer 401 from now on)."""
    with store_session(config) as session:
        session.write(lambda c: revoke_token(c, token_id, actor=actor_or_user(actor)))
    typer.echo(f"revoked {token_id}")


@audit_app.command("verify")
def audit_verify(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Walk the audit hash chain; name the first broken link. Exit 1 when the chain is broken.

    Also checks the chain head recorded in every archive file still on disk, so a removed tail
    of the trail is found too."""
    started = time.monotonic()
    with store_session(config) as session:
        report = session.read(lambda c: verify_chain(c, archived_chain_heads(c)))
    if json_output:
        print_json(report.as_dict())
    elif report.ok:
        typer.echo(f"audit chain intact: {report.checked} events, head {report.head['id']} "
                   f"({report.head['hash'][:16]}...), {report.heads_checked} archived head(s) found in it "
                   f"({time.monotonic() - started:.2f} s)")
    else:
        typer.echo(f"audit chain BROKEN at {report.problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)
