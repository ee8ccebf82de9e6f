"""A refresh at the moment a platform says the access token expired (Bluesky's ExpiredToken):
the account row is held (`SELECT ... FOR UPDATE`) while the provider refreshes, and the new
tokens are committed before anyone uses them, so of several workers that meet the same expired
token one refreshes and the others take its result. A refresh the platform refuses raises
AuthError (the worker then marks the account needs_reconnect).
"""
from __future__ import annotations

from sqlalchemy import select

from app import crypto
from app.models import SocialAccount
from app.oauth.base import ProviderContext, Tokens
from app.oauth.registry import provider_for
from worker.publishers.base import AuthError


def refresh_expired(ctx: ProviderContext, account_id: str, stale_token: str) -> str:
    """A valid access token for the account whose `stale_token` the platform just refused."""
    with ctx.sessions.begin() as session:
        account = session.scalars(select(SocialAccount).where(SocialAccount.id == account_id)
                                  .with_for_update()).one()
        current = crypto.unseal(account.access_token_encrypted)
        if current != stale_token:
            return current  # another worker refreshed while this one waited for the row
        if not account.refresh_token_encrypted:
            raise AuthError(f"{account.platform}: the access token expired and there is no "
                            "refresh token (a pasted token): connect the account again",
                            error_code="no_refresh_token")
        refreshed = provider_for(account.platform, ctx).refresh(Tokens(
            account.id, account.platform, account.external_id, current,
            crypto.unseal(account.refresh_token_encrypted), account.token_expires_at,
            account.refresh_expires_at, dict(account.auth_meta or {})))
        now = ctx.clock()
        account.access_token_encrypted = crypto.seal(refreshed.access_token)
        account.token_expires_at = refreshed.expires_at
        if refreshed.refresh_token:
            account.refresh_token_encrypted = crypto.seal(refreshed.refresh_token)
            account.refresh_expires_at = refreshed.refresh_expires_at
        account.refreshed_at = account.updated_at = now
    return refreshed.access_token
