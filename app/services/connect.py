"""Connecting social accounts through the platforms' own sign-in: start a flow (a single-use
`state` bound to the company, the PKCE verifier kept here), finish it at the callback, and
create or update the accounts it grants in one transaction (nothing half-created).

A flow started from the dashboard is also bound to that browser (a cookie whose hash the state
keeps); one started with an API key may be finished by whoever holds the state, which the API
client handed the authorize URL to.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import crypto
from app.db import rowcount
from app.errors import Conflict, InvalidInput, NotConfigured, NotFound, PlatformError
from app.models import Client, OAuthState, SocialAccount
from app.oauth.base import (
    ConnectRequest, Grant, Provider, ProviderContext, missing_settings, scopes_missing,
)
from app.oauth.registry import connectable, provider_for
from app.oauth.schedule import WARN_AHEAD
from app.services.accounts import renew
from app.statuses import AccountStatus
from worker.publishers.base import AuthError, PublishError

STATE_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class Started:
    """A flow under way: where to send the user; or, for a flow without a redirect, its accounts."""
    authorize_url: str | None = None
    state: str | None = None
    accounts: tuple["Connected", ...] = ()


@dataclass(frozen=True)
class Connected:
    account: SocialAccount
    created: bool  # False: an account the company had, reconnected


@dataclass(frozen=True)
class Availability:
    """A platform as the dashboard's Connect button shows it."""
    platform: str
    missing: tuple[str, ...]  # settings to set before it can be connected
    fields: tuple[str, ...]   # what the button asks for first (Mastodon's instance, ...)


def available(ctx: ProviderContext) -> list[Availability]:
    out = []
    for platform in connectable():
        provider = provider_for(platform, ctx)
        out.append(Availability(platform, tuple(missing_settings(provider, ctx.settings)),
                                tuple(provider.connect_fields)))
    return out


def expiring(accounts: list[SocialAccount], now: datetime) -> set[str]:
    """Accounts whose token expires within 7 days with no way to refresh it (the dashboard's
    warning, as account.token_expiring is the webhook's)."""
    return {a.id for a in accounts if a.token_expires_at is not None
            and a.refresh_token_encrypted is None and a.token_expires_at <= now + WARN_AHEAD}


def redirect_uri(ctx: ProviderContext, platform: str) -> str:
    return f"{ctx.settings.public_url.rstrip('/')}/connect/{platform}/callback"


def configured(ctx: ProviderContext, platform: str) -> Provider:
    """The platform's provider, or NotConfigured naming the settings it still needs."""
    provider = provider_for(platform, ctx)
    missing = missing_settings(provider, ctx.settings)
    if missing:
        raise NotConfigured(f"{platform} cannot be connected until the operator sets "
                            f"{', '.join(missing)} (see the README, Connecting accounts)", missing)
    return provider


def start(ctx: ProviderContext, company_id: str, platform: str, request: ConnectRequest,
          client_id: str | None = None, browser: str | None = None) -> Started:
    """Begin connecting: `browser` is the dashboard's nonce, which the callback must bring back."""
    with ctx.sessions() as session:
        _check_client(session, company_id, client_id)
    provider = configured(ctx, platform)
    if not provider.redirects:
        return Started(accounts=tuple(_save(ctx, company_id, client_id, provider,
                                            _call(provider.connect, request))))
    now, state = ctx.clock(), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if provider.uses_pkce else None
    extras = {**_call(provider.start, request), "redirectUri": redirect_uri(ctx, platform),
              "clientId": client_id, "browser": _hash(browser) if browser else None}
    with ctx.sessions.begin() as session:
        session.add(OAuthState(
            state_hash=_hash(state), company_id=company_id, platform=platform,
            verifier_encrypted=crypto.seal(verifier, ctx.keys) if verifier else None, extras=extras,
            created_at=now, expires_at=now + STATE_TTL))
    url = provider.authorize_url(state, _challenge(verifier) if verifier else None,
                                 extras["redirectUri"], extras)
    return Started(authorize_url=url, state=state)


def finish(ctx: ProviderContext, platform: str, args: dict[str, str], company_id: str | None,
           browser: str | None = None) -> list[Connected]:
    """The callback: spend the state, then trade the code for tokens and store the accounts.
    `company_id` is the caller's when it sent an API key; None for a browser coming back."""
    flow = _spend(ctx, platform, args.get("state", ""), company_id, browser)
    provider = configured(ctx, platform)
    if args.get("error"):
        why = args.get("error_description") or args["error"]
        raise InvalidInput(f"{platform} did not grant access ({why}): nothing was connected; "
                           "start again and allow access to connect the account",
                           {"error": args["error"]})
    if not args.get("code"):
        raise InvalidInput("the callback carries no code: start the connection again",
                           {"code": "required"})
    verifier = crypto.unseal(flow.verifier_encrypted, "a PKCE verifier", ctx.keys) \
        if flow.verifier_encrypted else None
    grants = _call(provider.finish, args["code"], verifier, flow.extras["redirectUri"], flow.extras)
    return _save(ctx, flow.company_id, flow.extras.get("clientId"), provider, grants)


def _spend(ctx: ProviderContext, platform: str, state: str, company_id: str | None,
           browser: str | None) -> OAuthState:
    """The flow of `state`, marked used in the same statement that checks it is unused."""
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        flow = session.get(OAuthState, _hash(state)) if state else None
        if flow is None or flow.platform != platform or (
                company_id is not None and flow.company_id != company_id):
            raise NotFound("unknown state: this connection was not started here (or by this "
                           "company); start it again")
        wanted = flow.extras.get("browser")
        if wanted and company_id is None and (not browser or _hash(browser) != wanted):
            raise Conflict("this connection (its state) was started in another browser: finish "
                           "it there, or start again here")
        if flow.expires_at <= now:
            raise Conflict(f"this connection (its state) expired: it must be finished within "
                           f"{int(STATE_TTL.total_seconds() // 60)} minutes; start it again")
        spent = rowcount(session.execute(update(OAuthState).where(
            OAuthState.state_hash == flow.state_hash, OAuthState.used_at.is_(None))
            .values(used_at=now)))
        if spent != 1:
            raise Conflict("this connection was already finished (a state is used once): "
                           "start again to connect another account")
        session.expunge(flow)
    return flow


def _call(step, *args):
    """A provider step, its taxonomy errors turned into what a user can act on."""
    try:
        return step(*args)
    except AuthError as exc:
        if exc.http_status == 400:
            raise InvalidInput(f"{exc.message}: start the connection again",
                               {"code": exc.error_code or "refused"}) from None
        raise PlatformError(f"{exc.message}: check this platform's client id and secret "
                            "settings") from None
    except PublishError as exc:
        raise PlatformError(f"{exc.message}: nothing was connected; try again shortly") from None


def _save(ctx: ProviderContext, company_id: str, client_id: str | None, provider: Provider,
          grants: list[Grant]) -> list[Connected]:
    """Every grant as an account, all or none; scopes checked first."""
    for grant in grants:
        missing = [s for s in provider.required_scopes if grant.scopes and s not in grant.scopes]
        if missing:
            raise scopes_missing(grant.platform, missing)
    if not grants:
        raise InvalidInput(f"{provider.platform} granted no account to connect",
                           {"accounts": "none granted"})
    try:
        return _upsert(ctx, company_id, client_id, grants)
    except IntegrityError:  # the same account connected twice at once: the second updates it
        return _upsert(ctx, company_id, client_id, grants)


def _upsert(ctx: ProviderContext, company_id: str, client_id: str | None,
            grants: list[Grant]) -> list[Connected]:
    now, out = ctx.clock(), []
    with ctx.sessions.begin() as session:
        for grant in grants:
            account = session.scalars(select(SocialAccount).where(
                SocialAccount.company_id == company_id, SocialAccount.platform == grant.platform,
                SocialAccount.external_id == grant.external_id).with_for_update()).first()
            created = account is None
            if created:
                account = SocialAccount(company_id=company_id, platform=grant.platform,
                                        external_id=grant.external_id, created_at=now,
                                        status=AccountStatus.ACTIVE)
                session.add(account)
            assert account is not None  # found, or made just above
            account.display_name = grant.display_name or account.display_name
            account.client_id = client_id or account.client_id
            account.scopes = " ".join(grant.scopes)[:1024] or account.scopes
            account.auth_meta = {**(account.auth_meta or {}), **grant.meta}
            renew(session, account, now, grant.access_token, grant.expires_at,
                  grant.refresh_token, grant.refresh_expires_at, keys=ctx.keys)
            out.append(Connected(account, created))
    return out


def _check_client(session: Session, company_id: str, client_id: str | None) -> None:
    if client_id is not None:
        client = session.get(Client, client_id)
        if client is None or client.company_id != company_id:
            raise NotFound(f"no client {client_id} in this company")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636): BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
