"""POST /limits/check: a text measured and checked for each platform the way the server will
check it when the post is scheduled (app/services/limits.py), for the composer's counters and
inline errors: one rule, so the browser never counts differently from the server."""
from __future__ import annotations

from pydantic import Field

from app.api.schemas import AccountPlatform, MediaUrl, Out, Strict
from app.api.spec import Api
from app.services.limits import LIMITS, MAX_MEDIA, check_post, length_for
from app.statuses import Platform

api = Api("limits", "posts")


class LimitsCheckIn(Strict):
    content: str = Field(max_length=65536, description="May be empty (a post being written)")
    mediaUrls: list[MediaUrl] = Field(default_factory=list, max_length=MAX_MEDIA)
    platforms: list[AccountPlatform] = Field(min_length=1, max_length=len(Platform))


class PlatformCheck(Out):
    platform: Platform
    length: int = Field(description="As the platform counts it (see `counting`)")
    maxLength: int
    counting: str = Field(description="weighted (X), graphemes (Bluesky), mastodon, threads "
                                      "or characters")
    problems: dict[str, str] = Field(description="By field, as POST /schedule-post would answer")


class LimitsCheckOut(Out):
    items: list[PlatformCheck]


@api.route("POST", "/limits/check", summary="Measure and check a text for each platform as "
           "scheduling will", body=LimitsCheckIn, response=LimitsCheckOut)
def check(company_id: str, body: LimitsCheckIn):
    return LimitsCheckOut(items=[
        PlatformCheck(platform=p, length=length_for(p, body.content),
                      maxLength=LIMITS[p].max_length, counting=LIMITS[p].counting,
                      problems=check_post(p, body.content, list(body.mediaUrls)))
        for p in dict.fromkeys(body.platforms)])
