"""Client credentials a platform hands out at run time (Mastodon: one app per instance),
registered once and kept sealed in oauth_apps."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import crypto
from app.models import OAuthApp


def registered_app(sessions: sessionmaker[Session], platform: str, instance: str,
                   register: Callable[[], tuple[str, str]], now: datetime,
                   keys: crypto.KeyRing | None = None) -> tuple[str, str]:
    """(client_id, client_secret) for the platform at `instance`; `register()` is called only
    when none is stored. Two first connects racing both register; the first stored wins."""
    found = _stored(sessions, platform, instance, keys)
    if found:
        return found
    client_id, secret = register()
    try:
        with sessions.begin() as session:
            session.add(OAuthApp(platform=platform, instance=instance, client_id=client_id,
                                 client_secret_encrypted=crypto.seal(secret, keys),
                                 created_at=now))
    except IntegrityError:
        stored = _stored(sessions, platform, instance, keys)
        assert stored is not None  # the row that won the race
        return stored
    return client_id, secret


def _stored(sessions: sessionmaker[Session], platform: str, instance: str,
            keys: crypto.KeyRing | None) -> tuple[str, str] | None:
    with sessions() as session:
        app = session.scalars(select(OAuthApp).where(OAuthApp.platform == platform,
                                                     OAuthApp.instance == instance)).first()
        if app is None:
            return None
        return app.client_id, crypto.unseal(app.client_secret_encrypted, "an app's client secret",
                                            keys)
