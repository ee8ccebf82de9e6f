"""Engagement metrics: the collect_metrics jobs raised when posts are published (in the
transaction that records the publish), what they store in post_metrics, and what the API
reads back. The platform calls are each publisher's `fetch_metrics` (worker/metrics.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math
from datetime import datetime, timedelta, timezone
from typing import Iterable

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from app.errors import NotFound
from app.models import Job, PostDetail, PostMetrics, SocialAccount
from app.queue.jobs import insert_jobs_once
from app.services.best_times import interactions
from app.statuses import PostStatus

COLLECT_KIND = "collect_metrics"
# When each collection runs, after the publish.
# (app/api/planning.py's MetricsOut names the same three.)
CHECKPOINTS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# A collection the platform keeps rate limiting is given up this long after it was due.
GIVE_UP_AFTER = timedelta(hours=24)
# Collections run at the end of the BUCKET the checkpoint falls in: one job per account,
# checkpoint and bucket measures all the account's posts that reach the checkpoint in it, so posts
# published minutes apart share one call.
BUCKET = timedelta(minutes=10)
MAX_ATTEMPTS = 5  # for errors other than rate limits, which defer without spending one
COUNTS = ("impressions", "likes", "comments", "shares", "saves", "clicks")


@dataclass(frozen=True)
class Measured:
    """One post's counts as its platform gave them; None where the platform gives no such
    count. `raw` is the platform's answer for the post, kept as it came."""

    impressions: int | None = None
    likes: int | None = None
    comments: int | None = None
    shares: int | None = None
    saves: int | None = None
    clicks: int | None = None
    raw: dict = field(default_factory=dict)


# -- raised with the publish -----------------------------------------------------------------

def schedule_collection(conn: Connection | Session, post_ids: Iterable[str],
                        published_at: datetime) -> int:
    """The collect_metrics jobs of the posts just published (rows written in this transaction):
    one per account, checkpoint and BUCKET, due at the bucket's end, so an account's posts
    published within one bucket are measured together. A job another transaction made for the
    same bucket is kept (its dedupe key), and covers these posts too. Returns the jobs asked for."""
    post_ids = list(post_ids)
    if not post_ids:
        return 0
    p = PostDetail
    accounts = conn.execute(select(p.social_account_id, p.company_id).where(
        p.id.in_(post_ids)).distinct()).all()
    jobs = []
    for checkpoint, delay in CHECKPOINTS.items():
        due = bucket_end(published_at + delay)
        jobs += [({"account_id": account_id, "checkpoint": checkpoint, "due": due.isoformat()},
                  company_id, due, f"metrics:{account_id}:{checkpoint}:{due:%Y%m%dT%H%M}")
                 for account_id, company_id in accounts]
    # Most publishes find their bucket's jobs there already: a plain read, which takes no lock,
    # spares them the insert, which would wait for the transaction that made those jobs.
    there = set(conn.execute(select(Job.dedupe_key).where(
        Job.dedupe_key.in_([key for *_, key in jobs]))).scalars())
    insert_jobs_once(conn, COLLECT_KIND, [j for j in jobs if j[3] not in there],
                     now=published_at, max_attempts=MAX_ATTEMPTS)
    return len(jobs)


def bucket_end(when: datetime) -> datetime:
    """`when` rounded up to the next whole BUCKET (of UTC time)."""
    step = BUCKET.total_seconds()
    return datetime.fromtimestamp(math.ceil(when.timestamp() / step) * step, timezone.utc)


# -- what a collection reads and writes -----------------------------------------------------

@dataclass(frozen=True)
class ToMeasure:
    account: SocialAccount  # detached; its sealed token included
    posts: dict[str, str]   # platform post id -> our post id, published posts only


def to_measure(sessions: sessionmaker[Session], account_id: str, checkpoint: str,
               due: datetime) -> ToMeasure | None:
    """The account, and its posts that reach `checkpoint` in the bucket ending at `due`,
    published and not yet measured there (a retry resumes after what a rate limit cut short).
    None when the account is gone."""
    p, m = PostDetail, PostMetrics
    latest = due - CHECKPOINTS[checkpoint]
    with sessions() as session:
        account = session.get(SocialAccount, account_id)
        if account is None:
            return None
        measured = select(m.id).where(m.post_detail_id == p.id, m.checkpoint == checkpoint)
        rows = session.execute(select(p.id, p.platform_post_id).where(
            p.social_account_id == account_id, p.status == PostStatus.PUBLISHED,
            p.platform_post_id.is_not(None), ~measured.exists(),
            p.published_at > latest - BUCKET, p.published_at <= latest)
            .order_by(p.published_at, p.id)).all()
        session.expunge(account)
    return ToMeasure(account, {r.platform_post_id: r.id for r in rows})


def record(sessions: sessionmaker[Session], checkpoint: str, measured: dict[str, Measured],
           now: datetime) -> int:
    """Store the counts of our posts (by our post id) at `checkpoint`: once per post and
    checkpoint (the unique key). Returns how many rows."""
    if not measured:
        return 0
    with sessions.begin() as session:
        session.execute(insert(PostMetrics), [
            dict(post_detail_id=post_id, checkpoint=checkpoint, collected_at=now, raw=m.raw,
                 **{name: getattr(m, name) for name in COUNTS})
            for post_id, m in measured.items()])
    return len(measured)


# -- what the API reads ----------------------------------------------------------------------

def post_metrics(sessions: sessionmaker[Session], company_id: str,
                 post_id: str) -> list[PostMetrics]:
    """A post's collections, oldest first; another company's post is not found."""
    with sessions() as session:
        owner = session.scalar(select(PostDetail.company_id).where(PostDetail.id == post_id))
        if owner != company_id:
            raise NotFound(f"no post {post_id} in this company")
        return list(session.scalars(select(PostMetrics).where(
            PostMetrics.post_detail_id == post_id).order_by(PostMetrics.collected_at)))


def engagement_rate(m: PostMetrics) -> float | None:
    """(likes + comments + shares + saves + clicks) / impressions, None without impressions."""
    return interactions(m) / m.impressions if m.impressions else None
