"""Planning: best posting times, a post's engagement metrics, evergreen rotation. Thin views over
app/services/best_times.py, metrics.py and evergreen.py."""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from app.api.schemas import Out, Strict
from app.api.spec import Api, sessions
from app.models import PostMetrics
from app.services import best_times, metrics
from app.statuses import Platform
from app.timeutil import utcnow

api = Api("planning", "planning")


class OptimalTimesQuery(Strict):
    companyId: UUID | None = None
    accountId: UUID | None = Field(None, description="One account; without it, all the "
                                                     "company's accounts (on `platform`, if given)")
    platform: Platform | None = Field(None, description="With accountId: 404 unless the account "
                                                        "is on it")
    days: int = Field(90, ge=best_times.MIN_DAYS, le=best_times.MAX_DAYS,
                      description="Days of history read, back from now")


class SlotOut(Out):
    weekday: int = Field(ge=0, le=6, description="0 = Monday, in the company's time zone")
    hour: int = Field(ge=0, le=23, description="Local hour, in the company's time zone")
    score: int = Field(ge=0, le=100, description="100 = the best slot")
    posts: int = Field(description="Posts with engagement data behind the score (0 for priors)")
    basis: Literal["history", "prior"]


class OptimalTimes(Out):
    timezone: str = Field(description="The company's IANA zone the slots are in")
    days: int
    items: list[SlotOut] = Field(description=f"The top {best_times.TOP}, best first")


@api.route("GET", "/optimal-times", summary="The best weekday and hour to post, from engagement",
           query=OptimalTimesQuery, response=OptimalTimes)
def optimal_times(company_id: str, query: OptimalTimesQuery):
    tz, slots = best_times.optimal_times(
        sessions(), company_id, utcnow(), account_id=_str(query.accountId),
        platform=query.platform, days=query.days)
    return OptimalTimes(timezone=tz, days=query.days, items=[
        SlotOut(weekday=s.weekday, hour=s.hour, score=s.score, posts=s.posts, basis=s.basis)
        for s in slots])


class MetricsOut(Out):
    checkpoint: Literal[tuple(metrics.CHECKPOINTS)] = Field(description="After the publish")
    collectedAt: datetime
    impressions: int | None = Field(description="null where the platform gives no such count")
    likes: int | None
    comments: int | None
    shares: int | None
    saves: int | None
    clicks: int | None
    engagementRate: float | None = Field(description="(likes + comments + shares + saves + "
                                                     "clicks) / impressions; null without impressions")

    @classmethod
    def of(cls, m: PostMetrics) -> "MetricsOut":
        return cls(checkpoint=m.checkpoint, collectedAt=m.collected_at,
                   engagementRate=metrics.engagement_rate(m),
                   **{name: getattr(m, name) for name in metrics.COUNTS})


class PostMetricsOut(Out):
    postId: str
    items: list[MetricsOut] = Field(description="One per checkpoint collected, oldest first")


@api.route("GET", "/scheduled-posts/<post_id>/metrics",
           summary="A published post's engagement, collected 1 h, 24 h and 7 days after",
           response=PostMetricsOut)
def post_metrics(company_id: str, post_id: str):
    rows = metrics.post_metrics(sessions(), company_id, post_id)
    return PostMetricsOut(postId=post_id, items=[MetricsOut.of(m) for m in rows])


def _str(value) -> str | None:
    return None if value is None else str(value)
