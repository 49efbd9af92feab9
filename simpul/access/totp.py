"""TOTP second factor (RFC 6238, pyotp): 6 digits, 30-second steps, one step of clock drift allowed.

A code is good once: the step it belongs to is stored with the user, and a code of that step or
an earlier one is refused (RFC 6238 section 5.2), so a code read over a shoulder cannot be replayed.
"""
from __future__ import annotations

import hmac
import time

import pyotp

ISSUER = "Simpul"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, user: str) -> str:
    """The otpauth:// URI an authenticator app reads (from a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user, issuer_name=ISSUER)


def matching_step(secret: str, code: str, after_step: int | None = None, now: float | None = None) -> int | None:
    """The time step (unix time // 30) whose code `code` is, within one step of now and later
    than `after_step`; None when it matches none."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // totp.interval)
    for step in (current - 1, current, current + 1):
        if (after_step is None or step > after_step) and hmac.compare_digest(totp.at(step * totp.interval), code):
            return step
    return None


def check_code(secret: str, code: str) -> bool:
    return matching_step(secret, code) is not None
