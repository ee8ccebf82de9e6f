"""Social access tokens (and webhook secrets) at rest: sealed with Fernet (AES-128-CBC +
HMAC-SHA256) under a MultiFernet key ring.

The ring is SCHEDULER_SECRET_KEY (seals; `scheduler secret-key` prints a new one) followed by
SCHEDULER_OLD_SECRET_KEYS (comma-separated, only open), so a key can be replaced without a
moment when stored tokens are unreadable: add the new key, keep the old one listed, run
`scheduler secret-key rotate`, then drop the old one. Without SCHEDULER_SECRET_KEY a fixed
development key is used, which is fine for the sandbox and wrong for anything real.
"""
from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.errors import ConfigError

_DEVELOPMENT_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"post-scheduler development").digest())
UNREADABLE = ("cannot be decrypted: neither SCHEDULER_SECRET_KEY nor any key of "
              "SCHEDULER_OLD_SECRET_KEYS is the key it was sealed with")


def _fernet(key: bytes, setting: str) -> Fernet:
    try:
        return Fernet(key)
    except ValueError:
        raise ConfigError(f"{setting} must hold Fernet keys: 32 url-safe base64-encoded bytes "
                          "(`scheduler secret-key` makes one)") from None


@lru_cache(maxsize=4)
def _ring(current: str, old: str) -> tuple[Fernet, MultiFernet]:
    """The sealing key and the ring that opens (current first, then the old keys in order)."""
    first = _fernet(current.encode() if current else _DEVELOPMENT_KEY, "SCHEDULER_SECRET_KEY")
    rest = [_fernet(k.strip().encode(), "SCHEDULER_OLD_SECRET_KEYS")
            for k in old.split(",") if k.strip()]
    return first, MultiFernet([first, *rest])


def _keys() -> tuple[Fernet, MultiFernet]:
    # Read from the environment on each call (cached by value), the variables Settings documents.
    return _ring(os.environ.get("SCHEDULER_SECRET_KEY", "").strip(),
                 os.environ.get("SCHEDULER_OLD_SECRET_KEYS", ""))


def check_keys() -> None:
    """Raise ConfigError naming the setting when a configured key is not a Fernet key."""
    _keys()


def development_key() -> bytes:
    return _DEVELOPMENT_KEY


def seal(token: str) -> str:
    return _keys()[1].encrypt(token.encode()).decode()


def unseal(sealed: str, what: str = "an access token") -> str:
    try:
        return _keys()[1].decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigError(f"{what} {UNREADABLE}") from None


def is_current(sealed: str) -> bool:
    """Sealed with SCHEDULER_SECRET_KEY itself (a rotation has nothing to do for it)."""
    try:
        _keys()[0].decrypt(sealed.encode())
        return True
    except InvalidToken:
        return False


def reseal(sealed: str, what: str = "a stored token") -> str:
    """The same plaintext sealed again with SCHEDULER_SECRET_KEY; ConfigError if no key opens it."""
    try:
        return _keys()[1].rotate(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigError(f"{what} {UNREADABLE}") from None


def new_key() -> str:
    return Fernet.generate_key().decode()
