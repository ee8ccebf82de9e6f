"""Planning: best posting times, a post's engagement metrics, evergreen rotation. Thin views over
app/services/best_times.py, metrics.py and evergreen.py."""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from flask import current_app

from app.api.schemas import CompanyQuery, Instant, Out, PostOut, Strict
from app.api.spec import Api, sessions
from app.models import EvergreenRule, PostMetrics
from app.services import best_times, evergreen, metrics
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
    checkpoint: Literal["1h", "24h", "7d"] = Field(description="After the publish "
                                                         "(metrics.CHECKPOINTS)")
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


class RotateIn(Strict):
    companyId: UUID | None = None
    count: int = Field(ge=1, le=evergreen.MAX_COUNT, description="Posts to schedule, at most")
    accountIds: list[UUID] | None = Field(None, min_length=1, max_length=50,
                                          description="Only these accounts' evergreen posts")
    from_: Instant | None = Field(None, alias="from", description="Window start (default and "
                                                                  "earliest: now)")
    to: Instant | None = Field(None, description="Window end (default: from + 7 days; cut at "
                                                 "90 days after from; a window over by now or "
                                                 "ending before from schedules nothing)")


class SkippedOut(Out):
    postId: str
    reason: str


class RotationOut(Out):
    scheduled: list[PostOut] = Field(description="The copies scheduled, each naming its source "
                                                 "in evergreenSourceId")
    skipped: list[SkippedOut] = Field(description="Sources of high enough priority with no "
                                                  "time free in the window")


@api.route("POST", "/evergreen/rotate", summary="Schedule the evergreen posts most due again",
           body=RotateIn, response=RotationOut)
def rotate(company_id: str, body: RotateIn):
    settings = current_app.extensions["scheduler"]["settings"]
    result = evergreen.rotate(
        sessions(), company_id, body.count, utcnow(),
        account_ids=[str(a) for a in body.accountIds] if body.accountIds else None,
        start=body.from_, end=body.to, min_gap_days=settings.evergreen_min_gap,
        max_attempts=settings.max_attempts)
    return RotationOut(scheduled=[PostOut.of(p) for p in result.scheduled],
                       skipped=[SkippedOut(postId=i, reason=r) for i, r in result.skipped])


class RuleIn(Strict):
    companyId: UUID | None = None
    accountIds: list[UUID] = Field(min_length=1, max_length=50)
    postsPerWeek: int = Field(ge=1, le=evergreen.MAX_COUNT)


class RuleOut(Out):
    id: str
    accountIds: list[str]
    postsPerWeek: int
    createdAt: datetime

    @classmethod
    def of(cls, r: EvergreenRule) -> "RuleOut":
        return cls(id=r.id, accountIds=list(r.account_ids), postsPerWeek=r.per_week,
                   createdAt=r.created_at)


class RuleList(Out):
    items: list[RuleOut]


@api.route("POST", "/evergreen/rules", summary="A weekly rotation: N evergreen posts a week on "
           "these accounts", body=RuleIn, response=RuleOut, status=201)
def create_rule(company_id: str, body: RuleIn):
    return RuleOut.of(evergreen.create_rule(sessions(), company_id,
                                            [str(a) for a in body.accountIds],
                                            body.postsPerWeek, utcnow()))


@api.route("GET", "/evergreen/rules", summary="The company's weekly rotations",
           query=CompanyQuery, response=RuleList)
def list_rules(company_id: str, query: CompanyQuery):
    return RuleList(items=[RuleOut.of(r) for r in evergreen.list_rules(sessions(), company_id)])


@api.route("DELETE", "/evergreen/rules/<rule_id>", summary="Stop a weekly rotation",
           response=RuleOut)
def delete_rule(company_id: str, rule_id: str):
    return RuleOut.of(evergreen.delete_rule(sessions(), company_id, rule_id))


def _str(value) -> str | None:
    return None if value is None else str(value)
