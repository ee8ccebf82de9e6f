"""What a platform's connect flow is to the rest of the scheduler: a `Provider` turns an
authorization code (or, for Bluesky, an identifier and app password) into `Grant`s, and a
refresh token into `Refreshed` tokens. app/services/connect.py keeps the flow's state and the
accounts; app/oauth/refresh.py decides when to refresh and holds the account row while it does.

Providers raise the publisher taxonomy (worker/publishers/base.py): AuthError when the platform
refuses (a bad code, a revoked refresh token), RetryableError when it cannot answer;
`maybe_published=True` on a RetryableError means the request may have been acted on (a read
timeout): for a refresh token that rotates, that answer is lost for good.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.crypto import KeyRing
from app.errors import InvalidInput
from app.statuses import Platform
from worker.publishers.http import HttpClient


@dataclass(frozen=True)
class Grant:
    """One account a finished flow yields (a Meta flow yields several)."""
    platform: Platform
    external_id: str
    display_name: str | None
    access_token: str = field(repr=False)
    expires_at: datetime | None = None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()  # as granted; empty when the platform does not say
    meta: dict = field(default_factory=dict)  # kept in social_accounts.auth_meta


@dataclass(frozen=True)
class Refreshed:
    """What a refresh yields. `refresh_token` None: keep the one stored (the platform did not
    replace it)."""
    access_token: str = field(repr=False)
    expires_at: datetime | None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: datetime | None = None


@dataclass(frozen=True)
class Tokens:
    """An account's current tokens, what a refresh starts from."""
    account_id: str
    platform: str
    external_id: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    refresh_expires_at: datetime | None
    meta: dict


@dataclass(frozen=True)
class ConnectRequest:
    """The body of `POST /connect/{platform}`, as the providers see it."""
    instance: str | None = None      # Mastodon: the instance's URL
    identifier: str | None = None    # Bluesky: handle or email
    app_password: str | None = field(default=None, repr=False)  # Bluesky


@dataclass(frozen=True)
class ProviderContext:
    """What a provider is built with: settings, the shared HTTP client (timeouts, User-Agent),
    and the database for what a provider registers at run time (Mastodon's per-instance app,
    through app/oauth/apps.py)."""
    settings: Settings
    http: HttpClient
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]

    @property
    def keys(self) -> KeyRing:
        """The key ring that seals and opens tokens (SCHEDULER_SECRET_KEY and the old keys)."""
        return KeyRing.of(self.settings)


class Provider(Protocol):
    platform: Platform
    required_settings: tuple[str, ...]  # environment variables that must be set to connect
    required_scopes: tuple[str, ...]    # a grant missing one of these is refused, naming it
    uses_pkce: bool
    redirects: bool                     # False: `connect(request)` without a redirect (Bluesky)
    rotates_refresh_token: bool         # a refresh token is single use (X): a lost answer is final
    # ConnectIn fields the dashboard's Connect button asks for first ("instance" for Mastodon;
    # "identifier", "appPassword" for Bluesky)
    connect_fields: tuple[str, ...]

    def start(self, request: ConnectRequest) -> dict:
        """Before the redirect: what the callback will need (kept in oauth_states.extras)."""

    def authorize_url(self, state: str, challenge: str | None, redirect_uri: str,
                      extras: dict) -> str: ...

    def finish(self, code: str, verifier: str | None, redirect_uri: str,
               extras: dict) -> list[Grant]: ...

    def connect(self, request: ConnectRequest) -> list[Grant]: ...

    def refreshable(self, tokens: Tokens) -> bool: ...

    def refresh(self, tokens: Tokens) -> Refreshed: ...


class OAuthProvider:
    """Defaults a provider may keep: an authorization-code flow with a redirect, no PKCE, a
    refresh token that is not single use, refreshable when a refresh token is stored."""

    platform: Platform
    required_settings: tuple[str, ...] = ("SCHEDULER_PUBLIC_URL",)
    required_scopes: tuple[str, ...] = ()
    uses_pkce = False
    redirects = True
    rotates_refresh_token = False
    connect_fields: tuple[str, ...] = ()

    def __init__(self, ctx: ProviderContext):
        self.ctx = ctx
        self.settings = ctx.settings
        self.http = ctx.http

    def start(self, request: ConnectRequest) -> dict:
        return {}

    def connect(self, request: ConnectRequest) -> list[Grant]:
        raise InvalidInput(f"{self.platform} accounts are connected through the platform's "
                           "authorization page: follow the authorizeUrl this answers")

    def refreshable(self, tokens: Tokens) -> bool:
        return tokens.refresh_token is not None

    def refresh(self, tokens: Tokens) -> Refreshed:
        raise NotImplementedError(f"{self.platform} tokens cannot be refreshed")


def missing_settings(provider: Provider, settings: Settings) -> list[str]:
    """The provider's required settings that are empty, by their environment names."""
    by_env = {env: name for name, env in Settings.ENV.items()}
    return [env for env in provider.required_settings
            if not str(getattr(settings, by_env[env], "") or "").strip()]


def scopes_missing(platform: str, missing: list[str]) -> InvalidInput:
    """A grant that lacks permissions the scheduler needs, named (nothing is connected)."""
    return InvalidInput(f"{platform} granted fewer permissions than the scheduler needs "
                        f"(missing: {' '.join(missing)}): nothing was connected; connect again "
                        "and allow every permission asked", {"scope": f"missing {' '.join(missing)}"})
