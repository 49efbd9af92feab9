"""The cryptography of BPJS VClaim and E-Klaim, both ways (clients decrypt, simulators encrypt).

VClaim: requests are signed with base64(HMAC-SHA256(secret, "consid&timestamp")); responses are
AES-256-CBC with key = SHA-256(consid + secret + timestamp) and iv = key[:16], over the
lz-string `compressToEncodedURIComponent` form of the JSON text.

E-Klaim: a 64-hex-character key; payload = base64(HMAC-SHA256(key, ct)[:10] + iv + ct), ct being
AES-256-CBC of the JSON with a random iv, base64 wrapped as PHP's chunk_split does (76 + CRLF);
responses are framed by ----BEGIN/END ENCRYPTED DATA---- lines.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from simpul.connectors.bpjs.lzstring import (
    LZStringError, compress_to_encoded_uri_component, decompress_from_encoded_uri_component,
)

EKLAIM_BEGIN = "----BEGIN ENCRYPTED DATA----"
EKLAIM_END = "----END ENCRYPTED DATA----"
EKLAIM_SIGNATURE_BYTES = 10


class CryptoError(ValueError):
    """A payload that does not decrypt: wrong key, bad padding, a signature that does not match."""


def _aes_cbc_encrypt(key: bytes, iv: bytes, plain: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _aes_cbc_decrypt(key: bytes, iv: bytes, cipher_text: bytes) -> bytes:
    if not cipher_text or len(cipher_text) % 16:
        raise CryptoError("cipher text is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(cipher_text) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CryptoError("bad padding after decryption (wrong key or timestamp)") from None


# ---------------------------------------------------------------------------------------- VClaim

def hmac_sha256_base64(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def vclaim_signature(cons_id: str, secret: str, timestamp: str) -> str:
    return hmac_sha256_base64(secret, f"{cons_id}&{timestamp}")


def vclaim_key(cons_id: str, secret: str, timestamp: str) -> tuple[bytes, bytes]:
    key = hashlib.sha256(f"{cons_id}{secret}{timestamp}".encode()).digest()
    return key, key[:16]


def vclaim_decrypt(cons_id: str, secret: str, timestamp: str, response: str) -> str:
    """The JSON text inside an encrypted `response` field (the timestamp is the request's)."""
    key, iv = vclaim_key(cons_id, secret, timestamp)
    try:
        cipher_text = base64.b64decode(response, validate=True)
    except binascii.Error:
        raise CryptoError("response is not base64") from None
    plain = _aes_cbc_decrypt(key, iv, cipher_text)
    try:
        return decompress_from_encoded_uri_component(plain.decode("ascii"))
    except (UnicodeDecodeError, LZStringError) as exc:
        raise CryptoError(f"decrypted response is not lz-string data ({exc})") from None


def vclaim_encrypt(cons_id: str, secret: str, timestamp: str, json_text: str) -> str:
    """What the VClaim server does to a response body (used by the simulator)."""
    key, iv = vclaim_key(cons_id, secret, timestamp)
    compressed = compress_to_encoded_uri_component(json_text).encode("ascii")
    return base64.b64encode(_aes_cbc_encrypt(key, iv, compressed)).decode("ascii")


# ---------------------------------------------------------------------------------------- E-Klaim

def eklaim_key(key_hex: str) -> bytes:
    try:
        key = bytes.fromhex(key_hex.strip())
    except ValueError:
        raise CryptoError("E-Klaim key is not hexadecimal") from None
    if len(key) != 32:
        raise CryptoError("E-Klaim key must be 64 hex characters (a 256-bit key)")
    return key


def _chunk_split(text: str, width: int = 76, end: str = "\r\n") -> str:
    """PHP chunk_split with its defaults: every chunk, the last one too, ends with CRLF."""
    return "".join(text[i:i + width] + end for i in range(0, len(text), width))


def eklaim_encrypt(key_hex: str, plain: bytes, iv: bytes | None = None) -> str:
    key = eklaim_key(key_hex)
    iv = os.urandom(16) if iv is None else iv
    cipher_text = _aes_cbc_encrypt(key, iv, plain)
    signature = hmac.new(key, cipher_text, hashlib.sha256).digest()[:EKLAIM_SIGNATURE_BYTES]
    return _chunk_split(base64.b64encode(signature + iv + cipher_text).decode("ascii"))


def eklaim_decrypt(key_hex: str, payload: str) -> bytes:
    """Decrypt a request or response body; framing lines and any whitespace are ignored."""
    key = eklaim_key(key_hex)
    lines = [line for line in payload.splitlines() if not line.strip().startswith("----")]
    compact = "".join("".join(lines).split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise CryptoError("E-Klaim payload is not base64") from None
    if len(raw) < EKLAIM_SIGNATURE_BYTES + 16 + 16:
        raise CryptoError("E-Klaim payload is too short")
    signature, iv = raw[:EKLAIM_SIGNATURE_BYTES], raw[EKLAIM_SIGNATURE_BYTES:EKLAIM_SIGNATURE_BYTES + 16]
    cipher_text = raw[EKLAIM_SIGNATURE_BYTES + 16:]
    expected = hmac.new(key, cipher_text, hashlib.sha256).digest()[:EKLAIM_SIGNATURE_BYTES]
    if not hmac.compare_digest(signature, expected):
        raise CryptoError("SIGNATURE_NOT_MATCH (E-Klaim key mismatch)")
    return _aes_cbc_decrypt(key, iv, cipher_text)


def eklaim_frame(payload: str) -> str:
    return f"{EKLAIM_BEGIN}\r\n{payload.rstrip()}\r\n{EKLAIM_END}\r\n"
