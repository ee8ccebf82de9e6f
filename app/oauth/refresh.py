"""Refreshing an account's token, safe when refresh tokens are single use (X rotates them).

The refresh holds the account row (`SELECT ... FOR UPDATE`) from before it reads the tokens
until the new pair is committed, so workers needing the same account queue on the row lock;
each reads the row again once it has it and, finding a fresh token, uses it without a request.
The new pair is committed before anyone uses it. A refresh the platform refuses, or whose
answer is lost after a rotating platform may have acted on it, leaves the account
`needs_reconnect` with the reason, in that same transaction: never a loop of refused refreshes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import crypto
from app.errors import NotFound
from app.logs import event
from app.models import SocialAccount
from app.oauth.base import Provider, ProviderContext, Refreshed, Tokens
from app.oauth.registry import provider_for
from app.oauth.schedule import JUST_IN_TIME
from app.services.accounts import needs_reconnect, renew, waiting_reason
from app.services.webhooks import account_event
from app.statuses import AccountStatus
from worker.publishers.base import AuthError, RetryableError


log = logging.getLogger("oauth")
# The error codes of an AuthError that means "reconnect the account", not "this post".
REFRESH_REFUSED = ("refresh_refused", "needs_reconnect")


@dataclass(frozen=True)
class Outcome:
    """What a look at an account's token came to: its access token (None when the account is
    gone) and what was done: `fresh` (nothing needed), `refreshed`, `cannot_refresh`
    (no way to refresh it; `warned` when account.token_expiring was raised just now)."""
    access_token: str | None
    done: str
    warned: bool = False


def fresh_token(ctx: ProviderContext, account_id: str, margin=JUST_IN_TIME) -> str:
    """The account's access token, valid for at least `margin` if it can be: refreshed when it
    expires sooner (a publish's just-in-time refresh). Raises AuthError when the account must
    be reconnected, RetryableError when the platform could not be asked."""
    with ctx.sessions() as session:  # the common case: a fresh token, no lock taken
        row = session.execute(select(SocialAccount.access_token_encrypted,
                                     SocialAccount.token_expires_at)
                              .where(SocialAccount.id == account_id)).first()
    deadline = ctx.clock() + margin
    if row is not None and not _expires_by(row.token_expires_at, deadline):
        return crypto.unseal(row.access_token_encrypted, keys=ctx.keys)
    outcome = look(ctx, account_id, lambda account: _expires_by(account.token_expires_at, deadline))
    if outcome.access_token is None:
        raise AuthError("the account was removed while its post was being published",
                        error_code="account_gone")
    return outcome.access_token


def replace_expired(ctx: ProviderContext, account_id: str, stale_token: str) -> str:
    """A new access token for the account whose `stale_token` the platform has just called
    expired ahead of its known expiry (Bluesky's ExpiredToken): refreshed once, unless another
    worker replaced it meanwhile. Raises AuthError when it cannot be."""
    outcome = look(ctx, account_id, lambda account: crypto.unseal(
        account.access_token_encrypted) == stale_token)
    if outcome.access_token is None:
        raise AuthError("the account was removed while its post was being published",
                        error_code="account_gone")
    if outcome.done == "cannot_refresh":
        raise AuthError("the platform says the access token expired and it cannot be "
                        "refreshed: reconnect the account", error_code="token_expired")
    return outcome.access_token


def refresh_ahead(ctx: ProviderContext, account_id: str, expires_at: datetime) -> Outcome:
    """A refresh_token job's work: refresh the token that expires at `expires_at`, unless it was
    replaced meanwhile; a token that cannot be refreshed is warned about, once."""
    return look(ctx, account_id, lambda account: account.token_expires_at == expires_at,
                warn=True)


def look(ctx: ProviderContext, account_id: str, needed: Callable[[SocialAccount], bool],
         warn: bool = False) -> Outcome:
    """Under the account's row lock: refresh if `needed(account)` still holds once the lock is
    ours. A refusal or a lost answer is committed (needs_reconnect) before it is raised."""
    refusal: AuthError | None = None
    with ctx.sessions.begin() as session:
        account = session.get(SocialAccount, account_id, with_for_update=True,
                              populate_existing=True)
        if account is None:
            return Outcome(None, "gone")
        if account.status != AccountStatus.ACTIVE:
            raise AuthError(account.status_reason or waiting_reason(account),
                            error_code="needs_reconnect")
        current = crypto.unseal(account.access_token_encrypted, keys=ctx.keys)
        if not needed(account):
            return Outcome(current, "fresh")  # another worker refreshed it while we waited
        provider, tokens = _provider(ctx, account), _tokens(account, current, ctx.keys)
        if provider is None or not provider.refreshable(tokens):
            return Outcome(current, "cannot_refresh", warn and _warn(session, account, ctx.clock()))
        try:
            refreshed = provider.refresh(tokens)
        except AuthError as exc:
            refusal = _refused(session, account, ctx.clock(), exc.message)
        except RetryableError as exc:
            if not (exc.maybe_published and provider.rotates_refresh_token):
                # Nothing was spent: the next try may succeed (and no post went out, so the
                # caller's retry has nothing to look for).
                raise RetryableError(f"refreshing the token: {exc.message}",
                                     http_status=exc.http_status,
                                     error_code=exc.error_code) from None
            refusal = _refused(session, account, ctx.clock(), (
                f"{exc.message}; {account.platform} may have replaced the refresh token before "
                "its answer was lost, and the old one is then spent"))
        else:
            _store(session, account, refreshed, ctx.clock(), ctx.keys)
            event(log, "token_refreshed", account_id=account.id, platform=account.platform,
                  expires_at=refreshed.expires_at, rotated=refreshed.refresh_token is not None)
            return Outcome(refreshed.access_token, "refreshed")
    event(log, "token_refresh_refused", logging.WARNING, account_id=account_id,
          error=refusal.message)
    raise refusal


def _store(session: Session, account: SocialAccount, refreshed: Refreshed, now: datetime,
           keys: crypto.KeyRing) -> None:
    renew(session, account, now, refreshed.access_token, refreshed.expires_at,
          refreshed.refresh_token, refreshed.refresh_expires_at or account.refresh_expires_at,
          keys=keys)
    account.refreshed_at = now


def _refused(session: Session, account: SocialAccount, now: datetime, why: str) -> AuthError:
    reason = (f"the {account.platform} token could not be refreshed ({why}): reconnect the "
              "account")[:1024]
    needs_reconnect(session, account.id, now, reason)
    return AuthError(reason, error_code="refresh_refused")


def _warn(session: Session, account: SocialAccount, now: datetime) -> bool:
    """account.token_expiring, once per token."""
    if account.expiring_notified_at is not None:
        return False
    account.expiring_notified_at = now
    session.flush()
    account_event(session, "account.token_expiring", account.id, now)
    return True


def _provider(ctx: ProviderContext, account: SocialAccount) -> Provider | None:
    try:
        return provider_for(account.platform, ctx)
    except NotFound:
        return None  # a pasted token of a platform without a connect flow


def _tokens(account: SocialAccount, access_token: str, keys: crypto.KeyRing) -> Tokens:
    refresh = account.refresh_token_encrypted
    return Tokens(account.id, account.platform, account.external_id, access_token,
                  crypto.unseal(refresh, "a refresh token", keys) if refresh else None,
                  account.token_expires_at, account.refresh_expires_at, account.auth_meta or {})


def _expires_by(expires_at: datetime | None, deadline: datetime) -> bool:
    return expires_at is not None and expires_at <= deadline
