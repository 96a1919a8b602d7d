"""The keystore: one random 32-byte seed, encrypted under a password, and its backup line.

File format (JSON, mode 0600, written atomically)::

    {"version": 1,
     "kdf": {"name": "argon2id", "opslimit": 3, "memlimit": 268435456, "salt": "<hex 16>"},
     "cipher": "xsalsa20poly1305",
     "nonce": "<hex 24>", "ciphertext": "<hex 48>",
     "primary": "tgl1…"}

The key is argon2id(password, salt, opslimit, memlimit), 32 bytes; the ciphertext is
``nacl.secret.SecretBox(key).encrypt(seed)`` (Poly1305 authenticates it, so a wrong
password and a tampered file both fail to open). ``primary`` is the address of key 0,
public, so the wallet can be recognised without the password.

The backup line is ``tgl-seed:`` and the seed with a 4-byte BLAKE2b checksum in hex,
grouped by four: 18 groups, any mistyped character fails the checksum.

This module is the wallet's boundary to the keystore file and to libsodium: the OS's
errors become :class:`~wallet.errors.FileAccessError`, libsodium's
:class:`~wallet.errors.KdfFailed` (or, opening a keystore,
:class:`~wallet.errors.KeystoreCorrupt`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret

from tangle.address import encode_address
from tangle.signing import SEED_SIZE
from wallet.errors import FileAccessError, KdfFailed, KeystoreCorrupt, UsageError, WrongPassword
from wallet.keys import derive_keypair

VERSION = 1
KDF_NAME = "argon2id"
CIPHER = "xsalsa20poly1305"
BACKUP_PREFIX = "tgl-seed:"
BACKUP_CHECKSUM = 4
BACKUP_PERSON = b"tangle/seedback"


@dataclass(frozen=True, slots=True)
class KdfParams:
    opslimit: int
    memlimit: int


KDF_PRESETS: dict[str, KdfParams] = {
    "moderate": KdfParams(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),
    "interactive": KdfParams(argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),
    "sensitive": KdfParams(argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE),
    "minimum": KdfParams(argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN),
}
"""``moderate`` (3 passes, 256 MiB, ~0.4 s) is the default; ``minimum`` is for tests only."""
DEFAULT_KDF = "moderate"


def kdf_preset(name: str) -> KdfParams:
    try:
        return KDF_PRESETS[name]
    except KeyError:
        raise UsageError(
            f"key derivation preset: expected one of {', '.join(KDF_PRESETS)}, got {name!r}"
        ) from None


def new_seed() -> bytes:
    return secrets.token_bytes(SEED_SIZE)


def _derive_key(password: str, salt: bytes, params: KdfParams) -> bytes:
    """argon2id; raises KdfFailed when libsodium fails (memory, limits)."""
    try:
        key: bytes = argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            password.encode(),
            salt,
            opslimit=params.opslimit,
            memlimit=params.memlimit,
        )
    except (nacl.exceptions.CryptoError, RuntimeError) as exc:
        raise KdfFailed(str(exc) or type(exc).__name__) from None
    return key


def encrypt_seed(seed: bytes, password: str, params: KdfParams) -> dict[str, Any]:
    """The keystore document for ``seed`` under ``password``."""
    if len(seed) != SEED_SIZE:
        raise ValueError(f"seed: expected {SEED_SIZE} bytes, got {len(seed)}")
    salt = secrets.token_bytes(argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_derive_key(password, salt, params))
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = box.encrypt(seed, nonce).ciphertext
    return {
        "version": VERSION,
        "kdf": {
            "name": KDF_NAME,
            "opslimit": params.opslimit,
            "memlimit": params.memlimit,
            "salt": salt.hex(),
        },
        "cipher": CIPHER,
        "nonce": nonce.hex(),
        "ciphertext": sealed.hex(),
        "primary": encode_address(derive_keypair(seed, 0).address),
    }


def decrypt_seed(doc: Any, password: str, path: Path) -> bytes:
    """The seed in keystore document ``doc``; clear errors for a damaged file or password."""
    try:
        if doc["version"] != VERSION:
            raise KeystoreCorrupt(path, f"version {doc['version']!r}, this wallet reads {VERSION}")
        kdf = doc["kdf"]
        if kdf["name"] != KDF_NAME or doc["cipher"] != CIPHER:
            raise KeystoreCorrupt(path, f"unknown kdf {kdf['name']!r} or cipher {doc['cipher']!r}")
        params = KdfParams(int(kdf["opslimit"]), int(kdf["memlimit"]))
        salt = bytes.fromhex(kdf["salt"])
        nonce = bytes.fromhex(doc["nonce"])
        sealed = bytes.fromhex(doc["ciphertext"])
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreCorrupt(path, f"missing or malformed field ({exc})") from None
    if not (
        argon2id.OPSLIMIT_MIN <= params.opslimit <= argon2id.OPSLIMIT_MAX
        and argon2id.MEMLIMIT_MIN <= params.memlimit <= argon2id.MEMLIMIT_MAX
    ):
        raise KeystoreCorrupt(path, "key derivation limits out of range")
    if len(salt) != argon2id.SALTBYTES or len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeystoreCorrupt(path, "salt or nonce of the wrong length")
    try:
        key = _derive_key(password, salt, params)
    except KdfFailed as exc:
        raise KeystoreCorrupt(path, f"the password hashing failed ({exc.reason})") from None
    box = nacl.secret.SecretBox(key)
    try:
        seed: bytes = box.decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise WrongPassword(path) from None
    if len(seed) != SEED_SIZE:
        raise KeystoreCorrupt(path, f"the seed is {len(seed)} bytes, expected {SEED_SIZE}")
    return seed


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` all or nothing: temp file, fsync, rename, fsync the folder.

    Raises:
        FileAccessError: the folder or file cannot be written (nothing is left behind).
    """
    try:
        _write_atomic(path, data, mode)
    except OSError as exc:
        raise FileAccessError(path, exc.strerror or str(exc)) from None


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_keystore(path: Path, seed: bytes, password: str, params: KdfParams) -> dict[str, Any]:
    doc = encrypt_seed(seed, password, params)
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")
    return doc


def read_keystore(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"no keystore at {path}: run `tangle-wallet init` (or `restore`) first"
        ) from None
    except OSError as exc:
        raise FileAccessError(path, exc.strerror or str(exc)) from None
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeystoreCorrupt(path, f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise KeystoreCorrupt(path, "not a JSON object")
    return doc


def load_seed(path: Path, password: str) -> bytes:
    return decrypt_seed(read_keystore(path), password, path)


# -- the backup line ---------------------------------------------------------------------


def _checksum(seed: bytes) -> bytes:
    return hashlib.blake2b(seed, digest_size=BACKUP_CHECKSUM, person=BACKUP_PERSON).digest()


def backup_string(seed: bytes) -> str:
    """``tgl-seed:xxxx-xxxx-…``: the seed and a 4-byte checksum, 18 groups of 4 hex digits."""
    if len(seed) != SEED_SIZE:
        raise ValueError(f"seed: expected {SEED_SIZE} bytes, got {len(seed)}")
    text = (seed + _checksum(seed)).hex()
    return BACKUP_PREFIX + "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_backup(text: str) -> bytes:
    """The seed in a backup line; spaces, dashes and case do not matter, typos do."""
    body = "".join(c for c in text.lower() if c not in "- \t\r\n")
    bare_prefix = BACKUP_PREFIX.replace("-", "")
    if body.startswith(bare_prefix):
        body = body[len(bare_prefix) :]
    expected = 2 * (SEED_SIZE + BACKUP_CHECKSUM)
    if len(body) != expected:
        raise UsageError(
            f"backup: expected {expected} hex digits after {BACKUP_PREFIX!r}, got {len(body)}"
        )
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        bad = next(c for c in body if c not in "0123456789abcdef")
        raise UsageError(f"backup: {bad!r} is not a hex digit (0-9, a-f)") from None
    seed, checksum = raw[:SEED_SIZE], raw[SEED_SIZE:]
    if _checksum(seed) != checksum:
        raise UsageError("backup: the checksum does not match: a character is mistyped")
    return seed
