"""TOTP second factor (RFC 6238, pyotp): 6 digits, 30-second steps, one step of clock drift allowed."""
from __future__ import annotations

import pyotp

ISSUER = "Simpul"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, user: str) -> str:
    """The otpauth:// URI an authenticator app reads (from a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user, issuer_name=ISSUER)


def check_code(secret: str, code: str) -> bool:
    code = code.strip().replace(" ", "")
    return code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1)
