"""Social access tokens at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256).

The key is SCHEDULER_SECRET_KEY (`scheduler secret-key` prints a new one). Without it a fixed
development key is used, which is fine for the sandbox and wrong for anything real.
"""
from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from app.errors import ConfigError

_DEVELOPMENT_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"post-scheduler development").digest())


@lru_cache(maxsize=4)
def _fernet(key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except ValueError:
        raise ConfigError("SCHEDULER_SECRET_KEY must be a Fernet key: "
                          "32 url-safe base64-encoded bytes (`scheduler secret-key` makes one)") from None


def _current() -> Fernet:
    raw = os.environ.get("SCHEDULER_SECRET_KEY", "").strip()
    return _fernet(raw.encode() if raw else _DEVELOPMENT_KEY)


def development_key() -> bytes:
    return _DEVELOPMENT_KEY


def seal(token: str) -> str:
    return _current().encrypt(token.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _current().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigError("an access token cannot be decrypted: SCHEDULER_SECRET_KEY is not "
                          "the key it was sealed with") from None


def new_key() -> str:
    return Fernet.generate_key().decode()
