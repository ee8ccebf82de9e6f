"""The request and response bodies of the HTTP API, as pydantic models.

The same classes validate what comes in, shape what goes out, and (through their JSON
Schema) make /openapi.json, so the document cannot drift from the code.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from app.errors import InvalidInput
from app.models import Client, PostDetail, PublishAttempt, SocialAccount
from app.services.limits import MAX_MEDIA, MAX_URL_LENGTH, check_media_url
from app.statuses import AccountStatus, Outcome, Platform, PostStatus, QueueStatus
from app.timeutil import zone


def _media_url(value: str) -> str:
    why = check_media_url(value)
    if why:
        raise ValueError(why)
    return value


def _iana(value: str) -> str:
    try:
        zone(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return value


# The pattern is for the document; _media_url says what is wrong in words.
MediaUrl = Annotated[str, Field(max_length=MAX_URL_LENGTH, json_schema_extra={
    "format": "uri", "pattern": r"^https?://\S+$"}), AfterValidator(_media_url)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Paris"]),
                     AfterValidator(_iana)]
LocalOrOffsetTime = Annotated[str, Field(
    min_length=1, max_length=64, examples=["2026-12-01T09:00:00+01:00", "2026-12-01T09:00:00"],
    description="ISO 8601 with a UTC offset, or a local time read in `timezone` "
                "(the company's time zone when none is given)")]


class Strict(BaseModel):
    """Requests: unknown fields are refused, so a typo never silently means 'not given'."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------------

class SchedulePostIn(Strict):
    companyId: UUID | None = Field(None, description="Must be the API key's company if given")
    socialAccountId: UUID | None = Field(None, description="One account (or socialAccountIds)")
    socialAccountIds: list[UUID] | None = Field(None, min_length=1, max_length=50,
                                                description="Several accounts: one group_id")
    content: str = Field(min_length=1, max_length=65536, description="Checked against each platform's limit")
    scheduledAt: LocalOrOffsetTime
    timezone: TimeZone | None = None
    clientId: UUID | None = None
    mediaUrls: list[MediaUrl] = Field(default_factory=list, max_length=MAX_MEDIA)


class EditPostIn(Strict):
    content: str | None = Field(None, min_length=1, max_length=65536)
    scheduledAt: LocalOrOffsetTime | None = None
    timezone: TimeZone | None = None
    mediaUrls: list[MediaUrl] | None = Field(None, max_length=MAX_MEDIA)


class SocialAccountIn(Strict):
    companyId: UUID | None = None
    platform: Platform
    externalId: str = Field(min_length=1, max_length=255,
                            description="Page id, IG user id, person/organization URN or X user id")
    displayName: str | None = Field(None, max_length=255)
    accessToken: str = Field(min_length=1, max_length=8192, description="Write-only")
    tokenExpiresAt: AwareDatetime | None = None
    clientId: UUID | None = None


class ReconnectIn(Strict):
    companyId: UUID | None = None
    accessToken: str = Field(min_length=1, max_length=8192, description="Write-only: the new token")
    tokenExpiresAt: AwareDatetime | None = None


class ReconnectOut(Out):
    account: "AccountOut"
    released: int = Field(description="Posts that were waiting for this account and are pending again")


class ClientIn(Strict):
    companyId: UUID | None = None
    name: str = Field(min_length=1, max_length=200)


class CompanyQuery(Strict):
    companyId: UUID | None = None


class PostListQuery(Strict):
    companyId: UUID | None = None
    status: PostStatus | None = None
    clientId: UUID | None = None
    socialAccountId: UUID | None = None
    from_: AwareDatetime | None = Field(None, alias="from", description="run_at >= from")
    to: AwareDatetime | None = Field(None, description="run_at < to")
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, max_length=512, description="nextCursor of the previous page")


# -- responses ------------------------------------------------------------------------------

class AccountOut(Out):
    id: str
    platform: Platform
    externalId: str
    displayName: str | None
    clientId: str | None
    status: AccountStatus
    tokenExpiresAt: datetime | None
    createdAt: datetime

    @classmethod
    def of(cls, a: SocialAccount) -> "AccountOut":
        return cls(id=a.id, platform=a.platform, externalId=a.external_id,
                   displayName=a.display_name, clientId=a.client_id, status=a.status,
                   tokenExpiresAt=a.token_expires_at, createdAt=a.created_at)


class AccountList(Out):
    items: list[AccountOut]


class ClientOut(Out):
    id: str
    name: str
    createdAt: datetime
    socialAccounts: list[AccountOut]

    @classmethod
    def of(cls, c: Client, accounts: list[SocialAccount]) -> "ClientOut":
        return cls(id=c.id, name=c.name, createdAt=c.created_at,
                   socialAccounts=[AccountOut.of(a) for a in accounts])


class ClientList(Out):
    items: list[ClientOut]


class PostOut(Out):
    id: str
    groupId: str
    clientId: str | None
    socialAccountId: str
    platform: Platform
    content: str
    mediaUrls: list[str]
    status: PostStatus = Field(description="What became of the post")
    queueStatus: QueueStatus = Field(description="Where it is in the queue")
    scheduledAt: datetime = Field(description="UTC")
    timezone: str | None = Field(description="The IANA zone its local time was read in "
                                        "(given, or the company's)")
    scheduledAtLocal: str | None = Field(description="scheduledAt in `timezone`, with its offset")
    attempts: int
    maxAttempts: int
    platformPostId: str | None
    errorMessage: str | None
    publishedAt: datetime | None
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def fields_of(cls, p: PostDetail) -> dict:
        s = p.schedule
        local = s.run_at.astimezone(zone(p.timezone)).isoformat() if p.timezone else None
        return dict(id=p.id, groupId=p.group_id, clientId=p.client_id,
                    socialAccountId=p.social_account_id, platform=p.account.platform,
                    content=p.content, mediaUrls=list(p.media_urls or []), status=p.status,
                    queueStatus=s.status, scheduledAt=s.run_at, timezone=p.timezone,
                    scheduledAtLocal=local, attempts=s.attempts, maxAttempts=s.max_attempts,
                    platformPostId=p.platform_post_id, errorMessage=p.error_message,
                    publishedAt=p.published_at, createdAt=p.created_at, updatedAt=p.updated_at)

    @classmethod
    def of(cls, p: PostDetail) -> "PostOut":
        return cls(**cls.fields_of(p))


class AttemptOut(Out):
    attempt: int
    startedAt: datetime
    finishedAt: datetime | None
    outcome: Outcome | None = Field(description="null while in flight")
    httpStatus: int | None
    errorCode: str | None
    errorMessage: str | None

    @classmethod
    def of(cls, a: PublishAttempt) -> "AttemptOut":
        return cls(attempt=a.attempt, startedAt=a.started_at, finishedAt=a.finished_at,
                   outcome=a.outcome, httpStatus=a.http_status, errorCode=a.error_code,
                   errorMessage=a.error_message)


class PostWithAttempts(PostOut):
    attemptHistory: list[AttemptOut]


class PostsCreated(Out):
    groupId: str
    posts: list[PostOut]


class PostPage(Out):
    items: list[PostOut]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class Health(Out):
    status: Literal["ok", "unhealthy"]
    database: Literal["reachable", "unreachable"]


class ErrorDetail(Out):
    code: str = Field(examples=["validation_failed"])
    message: str
    fields: dict[str, str] = Field(default_factory=dict,
                                   description="What is wrong with each request field")
    requestId: str | None = None


class ErrorBody(Out):
    error: ErrorDetail
