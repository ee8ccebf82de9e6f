"""The request and response bodies of the HTTP API, as pydantic models.

The same classes validate what comes in, shape what goes out, and (through their JSON
Schema) make /openapi.json, so the document cannot drift from the code.
"""
from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Annotated, Literal, cast
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Discriminator, Field, PlainValidator, Tag,
    WithJsonSchema, model_validator,
)

from app.errors import InvalidInput
from app.models import Client, PostDetail, PostPart, PublishAttempt, SocialAccount
from app.services.limits import (
    LIMITS, MAX_ALT_TEXT, MAX_MEDIA, MAX_PARTS, MAX_URL_LENGTH, check_media_url,
)
from app.services.media import MediaRef
from app.services.posts import CURSOR_PATTERN
from app.statuses import AccountStatus, Outcome, PartKind, Platform, PostStatus, QueueStatus
from app.timeutil import parse_instant, zone


def _media_url(value: str) -> str:
    why = check_media_url(value)
    if why:
        raise ValueError(why)
    return value


MACHINE_ZONES = {"localtime", "posixrules", "Factory"}  # this machine's files, not real zones


@cache
def iana_zones() -> tuple[str, ...]:
    """The zone names the document lists; a name outside them is refused, even one ZoneInfo
    would open (a file path such as posix/Europe/Paris), so the server and document agree."""
    return tuple(sorted(available_timezones() - MACHINE_ZONES))


def _iana(value: str) -> str:
    if value not in iana_zones():
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Paris")
    return value


# Date-times as the document states them and the server reads them, by one pattern each: years
# 0002-9998 (a day inside the calendar's ends, so no zone overflows), real months and days,
# hours 00-23, an optional fraction, an offset (Z or +-hh:mm). Only a local time that a zone
# skips or repeats gets past the pattern and is refused afterwards.
_YEAR = r"(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
        r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
# Divisible by 4, and centuries only by 400: the years with a 29 February.
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][48]|[2468][048]|[13579][26])00)"
_DATE = f"(?:{_YEAR}-{_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
INSTANT_PATTERN = f"^{_DATE}{_TIME}{_OFFSET}$"
LOCAL_OR_INSTANT_PATTERN = f"^{_DATE}{_TIME}{_OFFSET}?$"
TIME_OR_BEST_PATTERN = f"^(?:best|{_DATE}{_TIME}{_OFFSET}?)$"
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"  # not empty, not only spaces, no NUL
MEDIA_URL_PATTERN = (r"^https?://(?:[^\s\x00/?#@]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^\s\x00/?#@:\[\]]+)"
                     r"(?::[0-9]*)?(?:[/?#][^\s\x00]*)?$")
# What app/services/webhooks.refused_url takes before it looks at addresses: http(s), an ASCII
# host name, IPv4 address or bracketed IPv6 address (RFC 3986's grammar, which Python's urlsplit
# accepts), no user name or password, a port from 0 to 65535. Every string it matches passes
# that check, so the document and the server agree.
_H16 = "[0-9A-Fa-f]{1,4}"
_V4 = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"
_LS32 = f"(?:{_H16}:{_H16}|{_V4})"
_IPV6 = "(?:" + "|".join([
    f"(?:{_H16}:){{6}}{_LS32}", f"::(?:{_H16}:){{5}}{_LS32}", f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}", f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}", f"(?:(?:{_H16}:){{0,6}}{_H16})?::"]) + ")"
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
WEBHOOK_URL_PATTERN = (r"^https?://(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[" + _IPV6 + r"\])"
                       f"(?::{_PORT})?" r"(?:[/?#][^\s\x00]*)?$")


def _instant(value: object) -> datetime:
    """Only a string with an offset, as the pattern says: a number is not a date, not even a
    timestamp, so `to=0.5` is refused instead of read as 1970."""
    if not isinstance(value, str) or not re.fullmatch(INSTANT_PATTERN, value):
        raise ValueError("must be a date-time with a UTC offset between the years 0002 and 9998, "
                         "e.g. 2026-12-01T09:00:00+01:00")
    try:
        return parse_instant(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


# What each pattern means, in words, for the error message (pydantic would quote the regex).
PATTERN_MESSAGES = {
    NOT_BLANK: "must not be empty or only spaces",
    INSTANT_PATTERN: "must be a date-time with a UTC offset between the years 0002 and 9998, "
                     "e.g. 2026-12-01T09:00:00+01:00",
    LOCAL_OR_INSTANT_PATTERN: "is not an ISO 8601 date-time between the years 0002 and 9998 "
                              "(e.g. 2026-12-01T09:00:00+01:00, or 2026-12-01T09:00:00 read in "
                              "timezone or the company's zone)",
    TIME_OR_BEST_PATTERN: 'is neither "best" nor an ISO 8601 date-time between the years 0002 '
                          "and 9998 (e.g. 2026-12-01T09:00:00+01:00, or 2026-12-01T09:00:00 "
                          "read in timezone or the company's zone)",
    CURSOR_PATTERN: "not a cursor from this API: pass nextCursor unchanged",
    MEDIA_URL_PATTERN: "must be an http:// or https:// URL with a host and no spaces",
    WEBHOOK_URL_PATTERN: "must be an http:// or https:// URL with a host name or IPv4 address, "
                         "no user name or password, a port from 0 to 65535 and no spaces",
}


# The pattern is for the document; _media_url says what is wrong in words.
MediaUrl = Annotated[str, Field(max_length=MAX_URL_LENGTH, json_schema_extra={"format": "uri"},
                               pattern=MEDIA_URL_PATTERN),
                     AfterValidator(_media_url)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Paris"],
                                json_schema_extra=lambda schema: schema.update(enum=list(iana_zones()))),
                     AfterValidator(_iana)]
Instant = Annotated[datetime, PlainValidator(_instant), WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN,
     "examples": ["2026-12-01T09:00:00+01:00"]})]
Token = Annotated[str, Field(min_length=1, max_length=8192, pattern=NOT_BLANK,
                             description="Write-only; not only whitespace")]
LocalOrOffsetTime = Annotated[str, Field(
    min_length=1, max_length=64, pattern=LOCAL_OR_INSTANT_PATTERN,
    examples=["2026-12-01T09:00:00+01:00", "2026-12-01T09:00:00"],
    description="ISO 8601 with a UTC offset, or a local time read in `timezone` "
                "(the company's time zone when none is given); in the future")]


PartText = Annotated[str, Field(min_length=1, max_length=65536)]
PARTS_DOC = ("A thread: the replies that follow `content`, each to the previous, each checked "
             "against the platform's limit (X, and platforms with threads)")
FIRST_COMMENT_DOC = ("Posted on the post right after it (X: a reply; LinkedIn, Facebook, "
                     "Instagram: a comment); empty: none")


AltText = Annotated[str, Field(max_length=MAX_ALT_TEXT, description="Read aloud to people who "
                                                                  "cannot see the image")]


class MediaUrlItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: MediaUrl
    altText: AltText | None = None


class MediaIdItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: UUID = Field(description="From POST /media")
    altText: AltText | None = None


# A plain value or an object: the branch is chosen by the value's shape, so an error names the
# item (mediaUrls[0], mediaUrls[0].url), not both branches. The tags are left out of the names.
UNION_TAGS = ("plain", "item")


def _shape(value) -> str:
    return "item" if isinstance(value, dict) else "plain"


MediaUrlEntry = Annotated[
    Annotated[MediaUrl, Tag("plain")] | Annotated[MediaUrlItem, Tag("item")],
    Discriminator(_shape),
    Field(description="A URL the worker fetches at publish time, or {url, altText}")]
MediaIdEntry = Annotated[
    Annotated[UUID, Tag("plain")] | Annotated[MediaIdItem, Tag("item")],
    Discriminator(_shape),
    Field(description="Stored media's id (POST /media), or {id, altText}")]


def media_refs(ids: list | None, urls: list | None) -> tuple[MediaRef, ...] | None:
    """Every item in order (stored media first, then URLs) with its alt text; an empty tuple
    when only plain URLs are given (they need no more than the post's mediaUrls)."""
    if ids is None and urls is None:
        return None
    refs = [MediaRef(media_id=str(getattr(i, "id", i)), alt_text=getattr(i, "altText", None))
            for i in ids or []]
    refs += [MediaRef(url=getattr(u, "url", u), alt_text=getattr(u, "altText", None))
             for u in urls or []]
    plain = all(r.alt_text is None and r.media_id is None for r in refs)
    return () if plain else tuple(refs)


def plain_urls(urls: list | None) -> tuple[str, ...] | None:
    return None if urls is None else tuple(getattr(u, "url", u) for u in urls)


def _given(name: str, json_type: str) -> dict:
    """JSON Schema for "`name` is present and not null"."""
    return {"required": [name], "properties": {name: {"type": json_type}}}


class Strict(BaseModel):
    """Requests: unknown fields are refused, so a typo never silently means 'not given'."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests -------------------------------------------------------------------------------

class SchedulePostIn(Strict):
    # Exactly one of the two accounts' fields, a null counting as absent (as the server reads it).
    # A timezone only with scheduledAt.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [_given("socialAccountId", "string"), _given("socialAccountIds", "array")],
        "anyOf": [{"not": _given("timezone", "string")}, _given("scheduledAt", "string")]})

    companyId: UUID | None = Field(None, description="Must be the API key's company if given")
    socialAccountId: UUID | None = Field(None, description="One account (or socialAccountIds)")
    socialAccountIds: list[UUID] | None = Field(None, min_length=1, max_length=50,
                                                description="Several accounts: one group_id")
    content: str = Field(min_length=1, max_length=65536, description="Checked against each platform's limit")
    scheduledAt: LocalOrOffsetTime | None = Field(
        None, description="Absent (or null): the posts are drafts, queued later by "
                          "POST /scheduled-posts/{id}/schedule")
    timezone: TimeZone | None = None
    clientId: UUID | None = None
    mediaUrls: list[MediaUrlEntry] = Field(default_factory=list, max_length=MAX_MEDIA)
    mediaIds: list[MediaIdEntry] = Field(default_factory=list, max_length=MAX_MEDIA)
    parts: list[PartText] = Field(default_factory=list, max_length=MAX_PARTS,
                                  description=PARTS_DOC)
    firstComment: str | None = Field(None, max_length=65536, description=FIRST_COMMENT_DOC)
    evergreen: bool = Field(False, description="Publish it again later by evergreen rotation")

    @model_validator(mode="after")
    def _one_way_to_name_accounts(self) -> "SchedulePostIn":
        if (self.socialAccountId is None) == (self.socialAccountIds is None):
            # Raised as is (not a ValueError): the error names the field, as the document does.
            raise InvalidInput("give socialAccountId (one account) or socialAccountIds (several), "
                               "exactly one of them", fields={
                                   "socialAccountId": "give this or socialAccountIds, not both"})
        return self

    @property
    def account_ids(self) -> list[str]:
        # The validator above leaves exactly one of the two given.
        return [str(a) for a in self.socialAccountIds or [cast(UUID, self.socialAccountId)]]


class EditPostIn(Strict):
    # Something to change; a timezone only with scheduledAt.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        {"anyOf": [_given("content", "string"), _given("mediaUrls", "array"),
                   _given("mediaIds", "array"), _given("scheduledAt", "string"),
                   _given("parts", "array"), _given("firstComment", "string"),
                   _given("evergreen", "boolean")]},
        {"anyOf": [{"not": _given("timezone", "string")}, _given("scheduledAt", "string")]},
    ]})

    content: str | None = Field(None, min_length=1, max_length=65536)
    scheduledAt: LocalOrOffsetTime | None = None
    timezone: TimeZone | None = None
    mediaUrls: list[MediaUrlEntry] | None = Field(None, max_length=MAX_MEDIA)
    mediaIds: list[MediaIdEntry] | None = Field(None, max_length=MAX_MEDIA,
                                                description="Replaces the post's media with mediaUrls")
    parts: list[PartText] | None = Field(None, max_length=MAX_PARTS,
                                         description=f"{PARTS_DOC}; [] removes the thread")
    firstComment: str | None = Field(None, max_length=65536,
                                     description=f"{FIRST_COMMENT_DOC}; \"\" removes it")
    evergreen: bool | None = Field(None, description="Alone, it may change in any state")


class ScheduleDraftIn(Strict):
    scheduledAt: str = Field(
        min_length=1, max_length=64, pattern=TIME_OR_BEST_PATTERN,
        examples=["best", "2026-12-01T09:00:00+01:00", "2026-12-01T09:00:00"],
        description='A time as POST /schedule-post takes it (in the future; a local time read in '
                    '`timezone` or the company\'s zone), or "best": the next free best time of '
                    "the post's account (GET /optimal-times)")
    timezone: TimeZone | None = Field(None, description='How to read a local time; not with "best"')


# The platforms an account may be added for: those with limits and a publisher in this build.
AccountPlatform = Annotated[Platform, WithJsonSchema({"type": "string", "enum": [p.value for p in LIMITS]})]


class SocialAccountIn(Strict):
    companyId: UUID | None = None
    platform: AccountPlatform
    externalId: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK,
                            description="Page id, IG user id, person/organization URN or X user id")
    displayName: str | None = Field(None, max_length=255)
    accessToken: Token
    tokenExpiresAt: Instant | None = None
    clientId: UUID | None = None


class ReconnectIn(Strict):
    companyId: UUID | None = None
    accessToken: Token
    tokenExpiresAt: Instant | None = None


class ReconnectOut(Out):
    account: "AccountOut"
    released: int = Field(description="Posts that were waiting for this account and are pending again")


class ClientIn(Strict):
    companyId: UUID | None = None
    name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)


class CompanyQuery(Strict):
    companyId: UUID | None = None


class PostListQuery(Strict):
    companyId: UUID | None = None
    status: PostStatus | None = None
    clientId: UUID | None = None
    socialAccountId: UUID | None = None
    from_: Instant | None = Field(None, alias="from", description="run_at >= from")
    to: Instant | None = Field(None, description="run_at < to")
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, max_length=64, pattern=CURSOR_PATTERN,
                               description="Opaque: the nextCursor of the previous page, unchanged")


# -- responses ------------------------------------------------------------------------------

class AccountOut(Out):
    id: str
    platform: Platform
    externalId: str
    displayName: str | None
    clientId: str | None
    status: AccountStatus
    statusReason: str | None = Field(description="why the account must be reconnected")
    tokenExpiresAt: datetime | None
    refreshable: bool = Field(description="the scheduler holds a refresh token for it")
    createdAt: datetime

    @classmethod
    def of(cls, a: SocialAccount) -> "AccountOut":
        return cls(id=a.id, platform=a.platform, externalId=a.external_id,
                   displayName=a.display_name, clientId=a.client_id, status=a.status,
                   statusReason=a.status_reason, tokenExpiresAt=a.token_expires_at,
                   refreshable=a.refresh_token_encrypted is not None, createdAt=a.created_at)


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


class PublishedPartOut(Out):
    part: int = Field(description="0 the post, 1.. the thread's replies; the first comment last")
    kind: PartKind
    platformPostId: str
    publishedAt: datetime

    @classmethod
    def of(cls, p: PostDetail, part: PostPart) -> "PublishedPartOut":
        thread = len(p.parts or ())
        kind = (PartKind.POST if part.position == 0 else
                PartKind.REPLY if part.position <= thread else PartKind.COMMENT)
        return cls(part=part.position, kind=kind, platformPostId=part.platform_post_id,
                   publishedAt=part.published_at)


class MediaItemOut(Out):
    mediaId: str | None = Field(description="Stored media (GET /media), or null for a URL")
    url: str | None
    altText: str | None


class PostOut(Out):
    id: str
    groupId: str
    clientId: str | None
    socialAccountId: str
    platform: Platform
    content: str
    mediaUrls: list[str] = Field(description="The media URLs (without alt text)")
    media: list[MediaItemOut] = Field(description="Every media item in order, with alt text")
    parts: list[str] = Field(description="The thread's replies after `content`")
    firstComment: str | None
    publishedParts: list[PublishedPartOut] = Field(
        description="The steps of a thread or first comment already on the platform, each "
                    "kept as it went out: a retry resumes after the last")
    status: PostStatus = Field(description="What became of the post")
    queueStatus: QueueStatus | None = Field(description="Where it is in the queue; null for a "
                                                        "draft (not in the queue)")
    scheduledAt: datetime | None = Field(description="UTC; null for a draft")
    timezone: str | None = Field(description="The IANA zone its local time was read in "
                                        "(given, or the company's)")
    scheduledAtLocal: str | None = Field(description="scheduledAt in `timezone`, with its offset")
    attempts: int
    maxAttempts: int | None = Field(description="null for a draft")
    platformPostId: str | None = Field(description="The post's id on the platform (a thread's first part)")
    errorMessage: str | None
    publishedAt: datetime | None
    createdAt: datetime
    updatedAt: datetime
    evergreen: bool = Field(description="Published again by evergreen rotation")
    evergreenSourceId: str | None = Field(description="The evergreen post this is a rotation's copy of")

    @classmethod
    def fields_of(cls, p: PostDetail) -> dict:
        s = p.schedule
        local = (s.run_at.astimezone(zone(p.timezone)).isoformat()
                 if p.timezone and s is not None else None)
        return dict(id=p.id, groupId=p.group_id, clientId=p.client_id,
                    socialAccountId=p.social_account_id, platform=p.account.platform,
                    content=p.content, mediaUrls=list(p.media_urls or []),
                    media=_media_of(p), parts=list(p.parts or []), firstComment=p.first_comment,
                    publishedParts=[PublishedPartOut.of(p, part) for part in p.published_parts],
                    status=p.status,
                    queueStatus=s and s.status, scheduledAt=s and s.run_at, timezone=p.timezone,
                    scheduledAtLocal=local, attempts=s.attempts if s else 0,
                    maxAttempts=s and s.max_attempts,
                    platformPostId=p.platform_post_id, errorMessage=p.error_message,
                    publishedAt=p.published_at, createdAt=p.created_at, updatedAt=p.updated_at,
                    evergreen=bool(p.evergreen), evergreenSourceId=p.evergreen_source_id)

    @classmethod
    def of(cls, p: PostDetail) -> "PostOut":
        return cls(**cls.fields_of(p))


def _media_of(p: PostDetail) -> list[MediaItemOut]:
    items = p.media_items
    if items:
        return [MediaItemOut(mediaId=m.media_id, url=m.url, altText=m.alt_text) for m in items]
    return [MediaItemOut(mediaId=None, url=u, altText=None) for u in p.media_urls or []]


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


class ImportOut(Out):
    rows: int = Field(description="Rows of the file imported (every one)")
    posts: int = Field(description="Posts scheduled: one per account of each row with a time")
    drafts: int = Field(description="Drafts saved: one per account of each row without a time")


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
