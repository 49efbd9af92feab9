"""Password hashes: argon2id (argon2-cffi) with the library's current default parameters.

The parameters are part of each stored hash, so raising them later leaves old hashes
verifiable and `needs_rehash` tells when to store a new one (done at the next good login).
Hashing takes tens of milliseconds on purpose: callers in async code run it in a thread.
"""
from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from simpul.errors import OperationRefused

MIN_LENGTH = 12
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise OperationRefused(f"a password needs at least {MIN_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Verified against when the user name is unknown, so a login for a name that does not exist
    takes as long as one for a name that does (no user enumeration by timing)."""
    return _HASHER.hash("not a password of anyone here")
