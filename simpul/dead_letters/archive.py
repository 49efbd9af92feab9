"""Archive files: gzip-compressed JSON Lines, optionally AES-256-GCM encrypted, written durably.

File layout (one file per archive run and channel):

    {"format": "simpul-archive", "version": 1, ...}\\n     header: one JSON line, no patient data
    <body>                                                  gzip(JSON Lines), encrypted when the header
                                                            names a key id

The header carries the channel, counts, time range, compression and, when encrypted, the key id
and the 96-bit GCM nonce. The whole header line is the GCM associated data, so changing it
(say, the key id) makes decryption fail instead of silently reading something else. The store
keeps the file's SHA-256, checked before every read.

Keys come from the environment, never from a file next to the database:
`SIMPUL_ARCHIVE_KEYS="k2:<base64 32 bytes>,k1:<base64 32 bytes>"`. The first key encrypts new
archives; every listed key can decrypt, so rotation is "put the new key first, keep the old".

Writes are atomic and durable: a temporary file in the target folder is written and fsynced,
renamed into place, and the folder is fsynced, so after `write_archive_file` returns the file
survives a crash or power cut, and a crash before that leaves no partial archive under the
final name.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from simpul.errors import ArchiveUnreadable, ConfigError, OperationRefused, StoreError

KEYS_VARIABLE = "SIMPUL_ARCHIVE_KEYS"
FORMAT = "simpul-archive"
VERSION = 1
ALGORITHM = "AES-256-GCM"
NONCE_BYTES = 12          # the GCM nonce size NIST SP 800-38D recommends
KEY_BYTES = 32            # AES-256


@dataclass(frozen=True)
class ArchiveKeys:
    """Archive keys by id; `current_id` encrypts, all of them decrypt."""

    current_id: str
    keys: Mapping[str, bytes]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "ArchiveKeys | None":
        """Parse SIMPUL_ARCHIVE_KEYS; None when it is unset or empty. Errors name the key id, never the key."""
        text = (os.environ if environ is None else environ).get(KEYS_VARIABLE, "").strip()
        if not text:
            return None
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for number, item in enumerate(text.split(","), start=1):
            key_id, separator, encoded = item.strip().partition(":")
            key_id = key_id.strip()
            if not separator or not key_id:
                raise ConfigError(f"{KEYS_VARIABLE}: entry {number} is not 'id:base64key'")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"{KEYS_VARIABLE}: key '{key_id}' is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise ConfigError(f"{KEYS_VARIABLE}: key '{key_id}' is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
            if key_id in keys:
                raise ConfigError(f"{KEYS_VARIABLE}: key id '{key_id}' is listed twice")
            keys[key_id] = key
            order.append(key_id)
        return cls(order[0], keys)


def new_key() -> str:
    """A fresh random key, base64-encoded, for SIMPUL_ARCHIVE_KEYS."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


@dataclass(frozen=True)
class EncodedArchive:
    data: bytes
    sha256: str
    key_id: str | None


def encode_archive(records: Iterable[Mapping[str, Any]], header: Mapping[str, Any],
                   keys: ArchiveKeys | None) -> EncodedArchive:
    """Serialise records (JSON-able dicts) into the file format; encrypt with the current key when `keys`."""
    body = gzip.compress(b"".join(orjson.dumps(record) + b"\n" for record in records), compresslevel=6, mtime=0)
    fields: dict[str, Any] = {"format": FORMAT, "version": VERSION, **header, "compression": "gzip",
                              "encryption": None}
    if keys is not None:
        # cryptography is needed only for encrypted archives.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(NONCE_BYTES)
        fields["encryption"] = {"algorithm": ALGORITHM, "key_id": keys.current_id,
                                "nonce": base64.b64encode(nonce).decode()}
        header_line = orjson.dumps(fields) + b"\n"
        body = AESGCM(keys.keys[keys.current_id]).encrypt(nonce, body, header_line)
    else:
        header_line = orjson.dumps(fields) + b"\n"
    data = header_line + body
    return EncodedArchive(data, hashlib.sha256(data).hexdigest(), keys.current_id if keys is not None else None)


def read_header(data: bytes) -> dict[str, Any]:
    line, newline, _ = data.partition(b"\n")
    try:
        header = orjson.loads(line) if newline else None
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ArchiveUnreadable("not a Simpul archive file (no header line)")
    if header.get("version") != VERSION:
        raise ArchiveUnreadable(f"archive format version {header.get('version')} is not supported (this reads {VERSION})")
    return header


def decode_archive(data: bytes, keys: ArchiveKeys | None, *, expected_sha256: str | None = None,
                   name: str = "archive") -> Iterator[dict[str, Any]]:
    """Check, decrypt and decompress one archive file's bytes; yield its records.

    Refuses (OperationRefused) when the file was encrypted with a key id that is not in `keys`,
    and raises ArchiveUnreadable for a damaged or altered file. Messages name the archive and key id only.
    """
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ArchiveUnreadable(f"{name}: SHA-256 does not match the store's record (damaged or altered file)")
    header = read_header(data)
    header_line, _, body = data.partition(b"\n")
    encryption = header.get("encryption")
    if encryption:
        # cryptography is needed only for encrypted archives.
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key_id = str(encryption.get("key_id", ""))
        if encryption.get("algorithm") != ALGORITHM:
            raise ArchiveUnreadable(f"{name}: unknown encryption {encryption.get('algorithm')!r}")
        if keys is None or key_id not in keys.keys:
            raise OperationRefused(f"{name} is encrypted with key '{key_id}', which is not in {KEYS_VARIABLE}")
        try:
            body = AESGCM(keys.keys[key_id]).decrypt(base64.b64decode(encryption["nonce"]), body,
                                                     header_line + b"\n")
        except InvalidTag:
            raise ArchiveUnreadable(f"{name}: cannot decrypt with key '{key_id}' (wrong key or altered file)") from None
    try:
        text = gzip.decompress(body)
    except (OSError, EOFError) as exc:
        raise ArchiveUnreadable(f"{name}: body does not decompress ({type(exc).__name__})") from None
    for line in text.splitlines():
        if line:
            yield orjson.loads(line)


def write_archive_file(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` as directory/name atomically and durably; returns the final path.

    Raises StoreError (naming the folder) when the folder cannot be created or written; then no
    file exists under `name`.
    """
    try:
        created = _make_folders(directory)
        final = directory / name
        temporary = directory / f".{name}.{secrets.token_hex(4)}.partial"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.replace(temporary, final)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        for folder in [directory, *created]:
            _fsync_folder(folder)
    except OSError as exc:
        raise StoreError(f"cannot write archive file in {directory}: {exc.strerror or type(exc).__name__}") from None
    return final


def _make_folders(directory: Path) -> list[Path]:
    """mkdir -p, returning the parents of every folder created (their entries must be fsynced too)."""
    missing: list[Path] = []
    folder = directory
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for item in reversed(missing):
        item.mkdir(mode=0o700)
    return [item.parent for item in missing]


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
