"""Scheduling posts: post_details and post_schedule for every target account, in ONE transaction."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, InvalidInput, NotFound
from app.models import PostDetail, PostSchedule, SocialAccount


def schedule_post(sessions: sessionmaker[Session], company_id: str, account_ids: list[str],
                  content: str, run_at: datetime, now: datetime, *, timezone: str | None = None,
                  media_urls: list[str] | None = None, client_id: str | None = None,
                  idempotency_key: str | None = None, max_attempts: int = 3) -> list[PostDetail]:
    """All the posts of one request share a group id; every account must be the company's and active."""
    if not content.strip():
        raise InvalidInput("the content must not be empty")
    if not account_ids:
        raise InvalidInput("name at least one social account")
    group_id = str(uuid.uuid4())
    with sessions.begin() as session:
        accounts = _accounts(session, company_id, account_ids)
        posts = []
        for account in accounts:
            post = PostDetail(company_id=company_id, client_id=client_id or account.client_id,
                              social_account_id=account.id, group_id=group_id, content=content,
                              media_urls=list(media_urls or []), timezone=timezone,
                              status="pending", idempotency_key=idempotency_key,
                              created_at=now, updated_at=now)
            post.schedule = PostSchedule(run_at=run_at, status="pending", attempts=0,
                                         max_attempts=max_attempts, deferrals=0,
                                         created_at=now, updated_at=now)
            session.add(post)
            posts.append(post)
        session.flush()
    return posts


def _accounts(session: Session, company_id: str, account_ids: list[str]) -> list[SocialAccount]:
    unique = list(dict.fromkeys(account_ids))
    found = {a.id: a for a in session.scalars(
        select(SocialAccount).where(SocialAccount.id.in_(unique),
                                    SocialAccount.company_id == company_id))}
    for account_id in unique:
        account = found.get(account_id)
        if account is None:
            raise NotFound(f"no social account {account_id} in this company")
        if account.status != "active":
            raise Conflict(f"the social account {account_id} needs to be reconnected first")
    return [found[a] for a in unique]
