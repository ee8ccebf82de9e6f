"""Evergreen rotation: posts flagged `evergreen` are published again, as copies scheduled at
the account's best free times, most overdue first, never the same text on an account within
SCHEDULER_EVERGREEN_MIN_GAP days. A company's rules ("N a week on these accounts") run the same
rotation from weekly evergreen jobs.

A rotation holds its company's row (SELECT ... FOR UPDATE) for its whole transaction, so two
rotations of one company (two API calls, an API call and a rule's job, two workers) take turns,
and the second sees the copies the first made: no source gets two pending copies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidInput, NotFound
from app.models import Company, EvergreenRule, Job, PostDetail, PostSchedule, SocialAccount
from app.queue.jobs import enqueue
from app.services import best_times
from app.services.posts import NewPost, create_posts
from app.statuses import AccountStatus, PostStatus, QueueStatus

MAX_COUNT = 500          # posts one rotation may schedule
MAX_WINDOW = timedelta(days=90)
DEFAULT_WINDOW = timedelta(days=7)
ROTATE_KIND = "evergreen"
# A source with a copy in one of these is already on its way out: not rotated again.
QUEUED = (QueueStatus.PENDING, QueueStatus.WAITING, QueueStatus.PROCESSING)


@dataclass(frozen=True)
class Candidate:
    source: PostDetail
    last_published: datetime | None
    publishes: int
    priority: float


@dataclass(frozen=True)
class Rotation:
    scheduled: list[PostDetail]
    skipped: list[tuple[str, str]]  # (source post id, why)


def priority(now: datetime, last: datetime, publishes: int) -> float:
    """Days since the text last went out (or since the post was written, if never), divided by
    1 + ln(1 + times published): older is higher, each repeat lowers it by less than the last."""
    days = max((now - last).total_seconds() / 86400, 0.0)
    return days / (1 + math.log1p(publishes))


# -- the rotation -----------------------------------------------------------------------------

def rotate(sessions: sessionmaker[Session], company_id: str, count: int, now: datetime, *,
           account_ids: list[str] | None = None, start: datetime | None = None,
           end: datetime | None = None, min_gap_days: int = 30,
           max_attempts: int = 3) -> Rotation:
    """Schedule copies of the `count` evergreen posts of highest priority at their accounts'
    best free times in [start, end] (default: the next 7 days)."""
    start, end = _window(now, start, end)
    if not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"count must be from 1 to {MAX_COUNT}",
                           fields={"count": f"from 1 to {MAX_COUNT}"})
    with sessions.begin() as session:
        # The rotation's lock: every rotation of this company waits here for the one before.
        session.execute(select(Company.id).where(Company.id == company_id).with_for_update())
        if account_ids is not None:
            _check_accounts(session, company_id, account_ids)
        ranked = candidates(session, company_id, now, account_ids)
        gap = timedelta(days=min_gap_days)
        scheduled: list[PostDetail] = []
        skipped: list[tuple[str, str]] = []
        taken: dict[str, list[datetime]] = {}
        slots: dict[str, list[best_times.Slot]] = {}
        for candidate in ranked:
            if len(scheduled) == count:
                break
            source = candidate.source
            account = source.social_account_id
            if account not in slots:  # ranked once per account and rotation
                slots[account] = best_times.account_slots(session, source.account, now)
            when = _free_time(session, source, start, end, now, gap, taken.get(account, ()),
                              slots[account])
            if when is None:
                skipped.append((source.id, f"no best time free in the window at least "
                                           f"{min_gap_days} days from the same text on the account"))
                continue
            taken.setdefault(source.social_account_id, []).append(when)
            copy = NewPost([source.social_account_id], source.content, when,
                           media_urls=tuple(source.media_urls or ()), client_id=source.client_id,
                           not_before=now, evergreen_source_id=source.id)
            scheduled.extend(create_posts(session, company_id, copy, now, max_attempts))
    return Rotation(scheduled, skipped)


def _window(now: datetime, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end] from now on, at most MAX_WINDOW long. A window that is empty or over by now
    schedules nothing (each candidate is skipped, saying so), as an empty range finds nothing."""
    start = max(start or now, now)
    end = min(end or start + DEFAULT_WINDOW, start + MAX_WINDOW)
    return start, max(end, start)


def _check_accounts(session: Session, company_id: str, account_ids: list[str]) -> None:
    found = set(session.scalars(select(SocialAccount.id).where(
        SocialAccount.id.in_(account_ids), SocialAccount.company_id == company_id)))
    for account_id in account_ids:
        if account_id not in found:
            raise NotFound(f"no social account {account_id} in this company")


def candidates(session: Session, company_id: str, now: datetime,
               account_ids: list[str] | None = None) -> list[Candidate]:
    """The company's evergreen posts on active accounts that have no copy queued, highest
    priority first (ties: the older post first)."""
    p, s = PostDetail, PostSchedule
    query = (select(p).join(SocialAccount, SocialAccount.id == p.social_account_id)
             .where(p.company_id == company_id, p.evergreen.is_(True),
                    p.status.not_in((PostStatus.CANCELLED, PostStatus.DRAFT)),
                    SocialAccount.status == AccountStatus.ACTIVE))
    if account_ids is not None:
        query = query.where(p.social_account_id.in_(account_ids))
    sources = list(session.scalars(query))
    if not sources:
        return []
    ids = [src.id for src in sources]
    family = session.execute(
        select(p.id, p.evergreen_source_id, p.status, p.published_at, s.status.label("queue"))
        .outerjoin(s, s.post_detail_id == p.id)
        .where(or_(p.id.in_(ids), p.evergreen_source_id.in_(ids)))).all()
    out = []
    for src in sources:
        members = [r for r in family if src.id in (r.id, r.evergreen_source_id)]
        if any(r.queue in QUEUED for r in members):
            continue
        published = [r.published_at for r in members if r.status == PostStatus.PUBLISHED]
        last = max(published) if published else None
        out.append(Candidate(src, last, len(published),
                             priority(now, last or src.created_at, len(published))))
    return sorted(out, key=lambda c: (-c.priority, c.source.created_at, c.source.id))


def _free_time(session: Session, source: PostDetail, start: datetime, end: datetime,
               now: datetime, gap: timedelta, taken: Iterable[datetime],
               slots: list[best_times.Slot]) -> datetime | None:
    """The best free time in the window at least `gap` from the same text on the account."""
    same = _same_text_times(session, source, start - gap, end + gap)
    for when in best_times.free_best_times(session, source.social_account_id, start, end,
                                           now=now, taken=tuple(taken), ranked=slots):
        if all(abs(when - other) >= gap for other in same):
            return when
    return None


def _same_text_times(session: Session, source: PostDetail, start: datetime,
                     end: datetime) -> list[datetime]:
    """When the source's text is (or is due to be) on its account between start and end:
    published posts at their publish time, queued ones at their run time."""
    p, s = PostDetail, PostSchedule
    rows = session.execute(
        select(p.content, p.status, p.published_at, s.run_at, s.status.label("queue"))
        .outerjoin(s, s.post_detail_id == p.id)
        .where(p.social_account_id == source.social_account_id,
               or_(p.published_at.between(start, end),
                   s.run_at.between(start, end)))).all()
    text = source.content.strip()
    out = []
    for r in rows:
        if r.content.strip() != text:
            continue
        if r.status == PostStatus.PUBLISHED and r.published_at is not None:
            out.append(r.published_at)
        elif r.queue in QUEUED:
            out.append(r.run_at)
    return out


# -- rules, and the weekly jobs that run them -------------------------------------------------

def create_rule(sessions: sessionmaker[Session], company_id: str, account_ids: list[str],
                per_week: int, now: datetime) -> EvergreenRule:
    if not 1 <= per_week <= MAX_COUNT:
        raise InvalidInput(f"postsPerWeek must be from 1 to {MAX_COUNT}",
                           fields={"postsPerWeek": f"from 1 to {MAX_COUNT}"})
    with sessions.begin() as session:
        _check_accounts(session, company_id, account_ids)
        rule = EvergreenRule(company_id=company_id, account_ids=list(dict.fromkeys(account_ids)),
                             per_week=per_week, created_at=now)
        session.add(rule)
    return rule


def list_rules(sessions: sessionmaker[Session], company_id: str) -> list[EvergreenRule]:
    with sessions() as session:
        return list(session.scalars(select(EvergreenRule).where(
            EvergreenRule.company_id == company_id).order_by(EvergreenRule.created_at,
                                                             EvergreenRule.id)))


def delete_rule(sessions: sessionmaker[Session], company_id: str, rule_id: str) -> EvergreenRule:
    with sessions.begin() as session:
        rule = session.get(EvergreenRule, rule_id)
        if rule is None or rule.company_id != company_id:
            raise NotFound(f"no evergreen rule {rule_id} in this company")
        session.delete(rule)
    return rule


def enqueue_weekly_rotations(sessions: sessionmaker[Session], now: datetime) -> int:
    """This ISO week's evergreen job for every rule that has none yet (the dedupe key
    `evergreen:<rule>:<year>-W<week>` lets exactly one in). Returns how many were added."""
    year, week, _ = now.isocalendar()
    with sessions() as session:
        rules = list(session.execute(select(EvergreenRule.id, EvergreenRule.company_id)))
        keys = {f"evergreen:{r.id}:{year}-W{week:02d}" for r in rules}
        have = set(session.scalars(select(Job.dedupe_key).where(Job.dedupe_key.in_(keys)))) \
            if keys else set()
    added = 0
    for rule in rules:
        key = f"evergreen:{rule.id}:{year}-W{week:02d}"
        if key not in have and enqueue(sessions, ROTATE_KIND, {"rule_id": rule.id}, run_at=now,
                                       now=now, dedupe_key=key, company_id=rule.company_id):
            added += 1
    return added


def run_rule(sessions: sessionmaker[Session], rule_id: str, now: datetime,
             min_gap_days: int, max_attempts: int = 3) -> Rotation | None:
    """One week of a rule: `per_week` posts on its accounts in the 7 days from now; None when
    the rule was deleted meanwhile."""
    with sessions() as session:
        rule = session.get(EvergreenRule, rule_id)
        if rule is None:
            return None
        company_id, account_ids, per_week = rule.company_id, list(rule.account_ids), rule.per_week
        present = set(session.scalars(select(SocialAccount.id).where(
            SocialAccount.id.in_(account_ids), SocialAccount.company_id == company_id)))
    return rotate(sessions, company_id, per_week, now, account_ids=[a for a in account_ids if a in present],
                  min_gap_days=min_gap_days, max_attempts=max_attempts)
