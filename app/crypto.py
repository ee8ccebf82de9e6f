"""Social access tokens (and webhook secrets) at rest: sealed with Fernet (AES-128-CBC +
HMAC-SHA256) under a MultiFernet key ring.

The ring is SCHEDULER_SECRET_KEY (seals; `scheduler secret-key` prints a new one) followed by
SCHEDULER_OLD_SECRET_KEYS (comma-separated, only open), so a key can be replaced without a
moment when stored tokens are unreadable: add the new key, keep the old one listed, run
`scheduler secret-key rotate`, then drop the old one. Without SCHEDULER_SECRET_KEY a fixed
development key is used, which is fine for the sandbox and wrong for anything real.
The keys come from Settings: a caller with settings passes `KeyRing.of(settings)`.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import Settings
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


@dataclass(frozen=True)
class KeyRing:
    """The sealing key and the ring that opens (current first, then the old keys in order)."""

    sealing: Fernet
    opening: MultiFernet

    @classmethod
    def of(cls, settings: Settings) -> "KeyRing":
        """The ring of SCHEDULER_SECRET_KEY and SCHEDULER_OLD_SECRET_KEYS as `settings` hold them
        (built once per pair of values); ConfigError names the setting of a malformed key."""
        return _ring(settings.secret_key.strip(), settings.old_secret_keys)

    @classmethod
    def from_env(cls) -> "KeyRing":
        """For callers given no settings: the two key settings, read by Settings now."""
        return cls.of(Settings.only_from_env("secret_key", "old_secret_keys"))


@lru_cache(maxsize=4)
def _ring(current: str, old: str) -> KeyRing:
    first = _fernet(current.encode() if current else _DEVELOPMENT_KEY, "SCHEDULER_SECRET_KEY")
    rest = [_fernet(k.strip().encode(), "SCHEDULER_OLD_SECRET_KEYS")
            for k in old.split(",") if k.strip()]
    return KeyRing(first, MultiFernet([first, *rest]))


def development_key() -> bytes:
    return _DEVELOPMENT_KEY


def seal(token: str, keys: KeyRing | None = None) -> str:
    return (keys or KeyRing.from_env()).opening.encrypt(token.encode()).decode()


def unseal(sealed: str, what: str = "an access token", keys: KeyRing | None = None) -> str:
    try:
        return (keys or KeyRing.from_env()).opening.decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigError(f"{what} {UNREADABLE}") from None


def is_current(sealed: str, keys: KeyRing | None = None) -> bool:
    """Sealed with SCHEDULER_SECRET_KEY itself (a rotation has nothing to do for it)."""
    try:
        (keys or KeyRing.from_env()).sealing.decrypt(sealed.encode())
        return True
    except InvalidToken:
        return False


def reseal(sealed: str, what: str = "a stored token", keys: KeyRing | None = None) -> str:
    """The same plaintext sealed again with SCHEDULER_SECRET_KEY; ConfigError if no key opens it."""
    try:
        return (keys or KeyRing.from_env()).opening.rotate(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigError(f"{what} {UNREADABLE}") from None


def new_key() -> str:
    return Fernet.generate_key().decode()
