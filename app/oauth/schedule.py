"""When an account's token is looked at again: a `refresh_token` job, queued in the
transaction that stores the token. Refreshable tokens are refreshed a quarter of their life
ahead (X's 2 hours: 30 minutes; at most 10 days, so a 60-day token is renewed at day 50);
a token without a refresh token is looked at 7 days ahead, when its provider may renew it by
exchange (Meta) or the company is told it will expire (`account.token_expiring`)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Job, SocialAccount
from app.queue.jobs import insert_job

REFRESH_KIND = "refresh_token"
WARN_AHEAD = timedelta(days=7)
SHORTEST_LEAD = timedelta(minutes=5)
LONGEST_LEAD = timedelta(days=10)
JUST_IN_TIME = timedelta(minutes=5)  # a publish refreshes a token expiring sooner than this


def refresh_at(account: SocialAccount, now: datetime) -> datetime | None:
    """When the account's current token should be refreshed (or warned about); None: never."""
    expires = account.token_expires_at
    if expires is None:
        return None
    if account.refresh_token_encrypted is None:
        lead = WARN_AHEAD
    else:
        lead = min(max((expires - now) / 4, SHORTEST_LEAD), LONGEST_LEAD)
    return max(now, expires - lead)


def schedule_refresh(session: Session, account: SocialAccount, now: datetime) -> int | None:
    """Queue the job for the account's current token, once (keyed by the token's expiry), inside
    the caller's transaction, which holds the account row."""
    when = refresh_at(account, now)
    if when is None:
        return None
    expires = account.token_expires_at
    assert expires is not None  # refresh_at gave a time
    key = f"refresh:{account.id}:{expires.isoformat()}"
    if session.scalar(select(Job.id).where(Job.dedupe_key == key)) is not None:
        return None
    return insert_job(session, REFRESH_KIND, {"accountId": account.id,
                                              "expiresAt": expires.isoformat()},
                      when, now, dedupe_key=key, company_id=account.company_id)
