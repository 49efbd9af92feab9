"""WebAuthn (FIDO2) second factor with the `webauthn` package: register a security key, then
use it instead of a TOTP code. The challenge waits in the user's session (one at a time), and the
signature counter is kept so a cloned key shows up as a counter that goes backwards.
"""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, select, update
from webauthn import (
    generate_authentication_options, generate_registration_options, options_to_json,
    verify_authentication_response, verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import PublicKeyCredentialDescriptor

from simpul.errors import OperationRefused
from simpul.store.rows import webauthn_credential_row
from simpul.store.schema import webauthn_credentials

RP_NAME = "Simpul"


def registration_options(connection: Connection, *, user_id: int, user_name: str, rp_id: str) -> tuple[str, str]:
    """(options JSON for navigator.credentials.create, challenge as base64url)."""
    existing = [PublicKeyCredentialDescriptor(id=base64url_to_bytes(row.credential_id)) for row in connection.execute(
        select(webauthn_credentials.c.credential_id).where(webauthn_credentials.c.user_id == user_id))]
    options = generate_registration_options(rp_id=rp_id, rp_name=RP_NAME, user_name=user_name,
                                            user_id=str(user_id).encode(), exclude_credentials=existing)
    return options_to_json(options), bytes_to_base64url(options.challenge)


def register(connection: Connection, *, user_id: int, credential: dict[str, Any], challenge: str, rp_id: str,
             origin: str) -> str:
    """Verify an attestation and store the key; returns its credential id."""
    try:
        verified = verify_registration_response(credential=credential, expected_challenge=base64url_to_bytes(challenge),
                                                expected_rp_id=rp_id, expected_origin=origin)
    except (InvalidRegistrationResponse, ValueError, KeyError) as exc:
        raise OperationRefused(f"the security key's registration did not verify ({type(exc).__name__})") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    connection.execute(webauthn_credentials.insert().values(webauthn_credential_row(
        user_id=user_id, credential_id=credential_id, public_key=verified.credential_public_key,
        sign_count=verified.sign_count, created_at=time.time())))
    return credential_id


def authentication_options(connection: Connection, *, user_id: int, rp_id: str) -> tuple[str, str]:
    allowed = [PublicKeyCredentialDescriptor(id=base64url_to_bytes(row.credential_id)) for row in connection.execute(
        select(webauthn_credentials.c.credential_id).where(webauthn_credentials.c.user_id == user_id))]
    if not allowed:
        raise OperationRefused("this user has no security key")
    options = generate_authentication_options(rp_id=rp_id, allow_credentials=allowed)
    return options_to_json(options), bytes_to_base64url(options.challenge)


def authenticate(connection: Connection, *, user_id: int, credential: dict[str, Any], challenge: str, rp_id: str,
                 origin: str) -> str:
    """Verify an assertion by one of the user's keys and advance its counter; returns the credential id."""
    w = webauthn_credentials.c
    row = connection.execute(select(w.id, w.credential_id, w.public_key, w.sign_count)
                             .where(w.user_id == user_id, w.credential_id == str(credential.get("id", "")))).first()
    if row is None:
        raise OperationRefused("not a security key of this user")
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=base64url_to_bytes(challenge), expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=bytes(row.public_key),
            credential_current_sign_count=row.sign_count)
    except (InvalidAuthenticationResponse, ValueError, KeyError) as exc:
        raise OperationRefused(f"the security key's answer did not verify ({type(exc).__name__})") from None
    connection.execute(update(webauthn_credentials).where(w.id == row.id).values(sign_count=verified.new_sign_count))
    return str(row.credential_id)
