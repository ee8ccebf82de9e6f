"""Best posting times: each (weekday, hour) of the company's week scored 0-100 from the account's
own engagement over the last `days` days, or from published priors while its history is thin.

The method (README "Best posting times" has the formulas): a post's engagement rate is
(likes + comments + shares + saves + clicks) / impressions from its latest post_metrics row; the
rates are capped at the account's 90th percentile, so one viral post cannot carry its slot;
each slot's mean is shrunk toward the account's mean, which weighs as k = max(2, posts per
occupied slot) posts; a slot without posts gets the account's mean weighted by the priors; the
best slot scores 100 and the others in proportion.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidInput, NotFound
from app.models import Company, PostDetail, PostMetrics, PostSchedule, SocialAccount
from app.statuses import Platform, PostStatus, QueueStatus
from app.timeutil import localize, zone

TOP = 20
MIN_HISTORY = 10        # posts with known impressions in the window; fewer -> the priors
MIN_DAYS, MAX_DAYS = 1, 365
CAP_PERCENTILE = 0.9    # each rate is capped at this percentile of the account's rates
MIN_PRIOR_WEIGHT = 2.0  # the account's mean weighs as at least this many posts in every slot
HISTORY, PRIOR = "history", "prior"
UTC = timezone.utc
HORIZON = timedelta(days=28)  # how far ahead next_free_best_time looks for a free top slot

# Sprout Social, "The 2023 best times to post on social media" (34,000 customers' engagement,
# local time): the windows named there score 100 in the priors. Platforms it does not cover use
# its overall finding (Tuesday to Thursday, 9:00-12:00). Weekday is 0=Monday; hours [from, to).
PRIOR_WINDOWS: dict[str, list[tuple[int, int, int]]] = {
    Platform.FACEBOOK: [(0, 8, 13), (1, 8, 14), (2, 8, 13), (3, 8, 12)],
    Platform.INSTAGRAM: [(0, 10, 12), (1, 9, 13), (2, 10, 13), (4, 9, 11)],
    Platform.X: [(d, 9, 12) for d in (1, 2, 3, 4)],
    Platform.LINKEDIN: [(1, 10, 12), (2, 10, 12)],
}
OVERALL_WINDOWS = [(d, 9, 12) for d in (1, 2, 3)]
# Outside the windows, the same report's pattern: weekday working hours beat weekends, Sunday
# is the worst day, nights are quiet.
DAYTIME = range(7, 19)
PRIOR_DAY_SCORE = {0: 60, 1: 60, 2: 60, 3: 60, 4: 60, 5: 40, 6: 30}
PRIOR_NIGHT_SCORE = 10


@dataclass(frozen=True)
class Slot:
    weekday: int  # 0 = Monday, in the company's zone
    hour: int
    score: int    # 0-100
    posts: int    # posts behind the score (0 for the priors)
    basis: str    # "history" | "prior"
    value: float = 0.0  # the unrounded score, for ordering


# -- the API's question ----------------------------------------------------------------------

def optimal_times(sessions: sessionmaker[Session], company_id: str, now: datetime, *,
                  account_id: str | None = None, platform: str | None = None, days: int = 90,
                  top: int = TOP) -> tuple[str, list[Slot]]:
    """The company's zone and the `top` slots for one account, or for all the company's
    accounts on `platform`. Another company's account is not found."""
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be from {MIN_DAYS} to {MAX_DAYS}",
                           fields={"days": f"from {MIN_DAYS} to {MAX_DAYS}"})
    with sessions() as session:
        account_ids, platform = _accounts(session, company_id, account_id, platform)
        tz = _company_zone(session, company_id)
        slots = rank_slots(session, account_ids, platform, tz, now, days)
    return tz.key, slots[:top]


def _accounts(session: Session, company_id: str, account_id: str | None,
              platform: str | None) -> tuple[list[str], str]:
    """The accounts asked about: one (which must be on `platform`, if given), else the
    company's on `platform`, else all of the company's."""
    if account_id is not None:
        account = session.get(SocialAccount, account_id)
        if account is None or account.company_id != company_id or \
                platform not in (None, account.platform):
            raise NotFound(f"no social account {account_id} in this company"
                           + (f" on {platform}" if platform else ""))
        return [account.id], account.platform
    query = select(SocialAccount.id).where(SocialAccount.company_id == company_id)
    if platform is not None:
        query = query.where(SocialAccount.platform == platform)
    return list(session.scalars(query)), platform or ""


def account_slots(session: Session, account: SocialAccount, now: datetime,
                  days: int = 90) -> list[Slot]:
    """All 168 slots of one account, best first (rank_slots in its company's zone)."""
    tz = _company_zone(session, account.company_id)
    return rank_slots(session, [account.id], account.platform, tz, now, days)


def _company_zone(session: Session, company_id: str) -> ZoneInfo:
    return zone(session.scalar(select(Company.timezone).where(Company.id == company_id)) or "UTC")


# -- the ranking -----------------------------------------------------------------------------

def rank_slots(session: Session, account_ids: list[str], platform: str, tz: ZoneInfo,
               now: datetime, days: int = 90) -> list[Slot]:
    """All 168 slots, best first: from history when there is enough of it, else the priors."""
    history = engagement(session, account_ids, now - timedelta(days=days), now)
    if len(history) < MIN_HISTORY:
        return prior_slots(platform)
    return history_slots([(at.astimezone(tz), rate) for at, rate in history], platform)


def engagement(session: Session, account_ids: list[str], start: datetime,
               end: datetime) -> list[tuple[datetime, float]]:
    """(published_at, engagement rate) of the accounts' posts published in [start, end), from
    each post's latest metrics; posts without impressions have no rate and are left out."""
    if not account_ids:
        return []
    p, m = PostDetail, PostMetrics
    latest = (select(m.post_detail_id, func.max(m.collected_at).label("at"))
              .join(p, p.id == m.post_detail_id)
              .where(p.social_account_id.in_(account_ids), p.status == PostStatus.PUBLISHED,
                     p.published_at >= start, p.published_at < end)
              .group_by(m.post_detail_id).subquery())
    rows = session.execute(
        select(p.id, p.published_at, m.impressions, m.likes, m.comments, m.shares, m.saves,
               m.clicks)
        .join(latest, latest.c.post_detail_id == p.id)
        .join(m, (m.post_detail_id == p.id) & (m.collected_at == latest.c.at))).all()
    # By post: posts recorded in one transaction share their published_at.
    rates = {r.id: (r.published_at, interactions(r) / r.impressions) for r in rows if r.impressions}
    return list(rates.values())


def interactions(row) -> int:
    """likes + comments + shares + saves + clicks, each counted where the platform gives it."""
    return sum(getattr(row, name) or 0 for name in ("likes", "comments", "shares", "saves", "clicks"))


def history_slots(local_rates: list[tuple[datetime, float]], platform: str = "") -> list[Slot]:
    """Slots from (local publish time, rate) pairs: capped, shrunk, scaled (module docstring).
    A slot with no post of its own gets the account's mean times its prior score / 100."""
    rates = sorted(rate for _, rate in local_rates)
    cap = rates[max(math.ceil(CAP_PERCENTILE * len(rates)) - 1, 0)]
    by_slot: dict[tuple[int, int], list[float]] = {}
    for at, rate in local_rates:
        by_slot.setdefault((at.weekday(), at.hour), []).append(min(rate, cap))
    capped = [r for slot in by_slot.values() for r in slot]
    mean = sum(capped) / len(capped)
    k = max(MIN_PRIOR_WEIGHT, len(capped) / len(by_slot))
    prior = {(s.weekday, s.hour): s.value / 100 for s in prior_slots(platform)}
    values = {slot: (sum(by_slot[slot]) + k * mean) / (len(by_slot[slot]) + k)
              if slot in by_slot else mean * prior[slot] for slot in prior}
    best = max(values.values())
    slots = [Slot(d, h, round(100 * v / best) if best > 0 else 0, len(by_slot.get((d, h), [])),
                  HISTORY, v) for (d, h), v in values.items()]
    return sorted(slots, key=lambda s: (-s.value, -s.posts, s.weekday, s.hour))


def prior_slots(platform: str) -> list[Slot]:
    windows = PRIOR_WINDOWS.get(platform, OVERALL_WINDOWS)
    best = {(d, h) for d, start, end in windows for h in range(start, end)}
    slots = []
    for d in range(7):
        for h in range(24):
            score = 100 if (d, h) in best else (
                PRIOR_DAY_SCORE[d] if h in DAYTIME else PRIOR_NIGHT_SCORE)
            slots.append(Slot(d, h, score, 0, PRIOR, float(score)))
    return sorted(slots, key=lambda s: (-s.value, s.weekday, s.hour))


# -- free slots, for "best" scheduling and evergreen rotation -------------------------------

def next_free_best_time(session: Session, account_id: str, after: datetime, *,
                        now: datetime | None = None, days: int = 90,
                        taken: tuple[datetime, ...] = ()) -> datetime:
    """The next free best time of a social account after `after`.

    session:    an open Session (the caller's transaction, if it has one).
    account_id: the account (its company gives the zone; its platform the priors).
    after:      an aware datetime; the answer is strictly later.
    now:        the end of the history window (default: `after`); `days` its length.
    taken:      more instants to treat as occupied (e.g. slots the caller is about to fill).

    Returns an aware UTC datetime on the hour (in the company's zone) that is one of the
    account's TOP best (weekday, hour) slots and not already taken by a pending post of that
    account within the same hour; the earliest such time within HORIZON (28 days) after
    `after`. Raises NotFound for an unknown account, InvalidInput when no top slot is free
    within the horizon.
    """
    found = free_best_times(session, account_id, after, after + HORIZON, now=now, days=days,
                            taken=taken, by="time", limit=1)
    if not found:
        raise InvalidInput(f"every best time of the account in the {HORIZON.days} days after "
                           f"{after.isoformat()} is taken: give a time instead",
                           fields={"scheduledAt": "no free best time; give a time"})
    return found[0]


def free_best_times(session: Session, account_id: str, start: datetime, end: datetime, *,
                    now: datetime | None = None, days: int = 90, taken: tuple[datetime, ...] = (),
                    by: str = "score", limit: int | None = None, top: int = TOP,
                    ranked: list[Slot] | None = None) -> list[datetime]:
    """The instants in (start, end] on one of the account's `top` slots with no pending post of
    the account (or `taken` instant) in the same hour: best score first (`by="score"`, ties the
    earlier), or earliest first (`by="time"`). `ranked`: the account's slots if the caller has
    them already (rank_slots)."""
    account = session.get(SocialAccount, account_id)
    if account is None:
        raise NotFound(f"no social account {account_id}")
    tz = _company_zone(session, account.company_id)
    ranked = (ranked or account_slots(session, account, now or start, days))[:top]
    order = {(s.weekday, s.hour): i for i, s in enumerate(ranked)}
    busy = sorted([t.astimezone(UTC) for t in taken] + list(session.scalars(
        select(PostSchedule.run_at).join(PostDetail, PostDetail.id == PostSchedule.post_detail_id)
        .where(PostDetail.social_account_id == account.id,
               PostSchedule.status.in_((QueueStatus.PENDING, QueueStatus.WAITING)),
               PostSchedule.run_at >= start, PostSchedule.run_at < end + timedelta(hours=1)))))
    candidates = [t for t in _hours(start, end, tz)
                  if (t.weekday(), t.hour) in order and not _occupied(busy, t)]
    if by == "score":
        candidates.sort(key=lambda t: (order[(t.weekday(), t.hour)], t))
    return [c.astimezone(UTC) for c in candidates[:limit]]


def _hours(start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every whole local hour in (start, end] that exists exactly once in `tz`."""
    out, day = [], start.astimezone(tz).date()
    while day <= end.astimezone(tz).date():
        for h in range(24):
            try:
                t = localize(datetime.combine(day, time(h)), tz)
            except InvalidInput:  # skipped or repeated by a DST change: not a slot that day
                continue
            if start < t <= end:
                out.append(t)
        day += timedelta(days=1)
    return out


def _occupied(busy: list[datetime], t: datetime) -> bool:
    """Whether a time in the sorted `busy` falls in the hour that starts at `t`."""
    i = bisect_left(busy, t)
    return i < len(busy) and busy[i] < t + timedelta(hours=1)
