"""Engagement metrics: the collect_metrics jobs raised when posts are published (in the
transaction that records the publish), what they store in post_metrics, and what the API
reads back. The platform calls are each publisher's `fetch_metrics` (worker/metrics.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from app.errors import NotFound
from app.models import PostDetail, PostMetrics, SocialAccount
from app.queue.jobs import insert_jobs
from app.services.best_times import interactions
from app.statuses import PostStatus

COLLECT_KIND = "collect_metrics"
# When each collection runs, after the publish.
CHECKPOINTS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# A collection the platform keeps rate limiting is given up this long after it was due.
GIVE_UP_AFTER = timedelta(hours=24)
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
    """One collect_metrics job per account and checkpoint for the posts just published (rows
    written in this transaction), so a batch of an account's posts is measured in one call
    where its platform allows. Returns how many jobs."""
    post_ids = list(post_ids)
    if not post_ids:
        return 0
    p = PostDetail
    by_account: dict[tuple[str, str], list[str]] = {}
    for row in conn.execute(select(p.id, p.social_account_id, p.company_id)
                            .where(p.id.in_(post_ids)).order_by(p.id)):
        by_account.setdefault((row.social_account_id, row.company_id), []).append(row.id)
    jobs = 0
    for checkpoint, delay in CHECKPOINTS.items():
        due = published_at + delay
        batch = [({"account_id": account_id, "post_ids": ids, "checkpoint": checkpoint,
                   "due": due.isoformat()}, company_id)
                 for (account_id, company_id), ids in by_account.items()]
        insert_jobs(conn, COLLECT_KIND, batch, run_at=due, now=published_at,
                    max_attempts=MAX_ATTEMPTS)
        jobs += len(batch)
    return jobs


# -- what a collection reads and writes -----------------------------------------------------

@dataclass(frozen=True)
class ToMeasure:
    account: SocialAccount  # detached; its sealed token included
    posts: dict[str, str]   # platform post id -> our post id, published posts only


def to_measure(sessions: sessionmaker[Session], account_id: str,
               post_ids: list[str]) -> ToMeasure | None:
    """The account and those of the posts that are (still) published with a platform id; None
    when the account is gone."""
    with sessions() as session:
        account = session.get(SocialAccount, account_id)
        if account is None:
            return None
        rows = session.execute(select(PostDetail.id, PostDetail.platform_post_id).where(
            PostDetail.id.in_(post_ids), PostDetail.social_account_id == account_id,
            PostDetail.status == PostStatus.PUBLISHED,
            PostDetail.platform_post_id.is_not(None))).all()
        session.expunge(account)
    return ToMeasure(account, {r.platform_post_id: r.id for r in rows})


def record(sessions: sessionmaker[Session], checkpoint: str, measured: dict[str, Measured],
           now: datetime) -> int:
    """Store the counts of our posts (by our post id) at `checkpoint`, replacing an earlier
    collection of the same checkpoint (a retried job). Returns how many rows."""
    if not measured:
        return 0
    with sessions.begin() as session:
        session.execute(delete(PostMetrics).where(PostMetrics.post_detail_id.in_(list(measured)),
                                                  PostMetrics.checkpoint == checkpoint))
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
