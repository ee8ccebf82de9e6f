"""Planning: best posting times, a post's engagement metrics, evergreen rotation. Thin views over
app/services/best_times.py, metrics.py and evergreen.py."""
from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from app.api.schemas import Out, Strict
from app.api.spec import Api, sessions
from app.services import best_times
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


def _str(value) -> str | None:
    return None if value is None else str(value)
