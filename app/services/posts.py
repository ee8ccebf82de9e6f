"""Scheduled posts: create (post_details + post_schedule for every target account in ONE
transaction), list, read, edit, cancel and retry, always within one company.

Edit and cancel are conditional updates on `post_schedule.status = 'pending'`: a row the
worker has claimed is locked or already `processing`, so they can never change a post that
is being published. Only worker/queue.py writes the lock columns.

A draft (no time given) is a post_details row with status `draft` and no post_schedule row, so
the worker cannot see it; editing, cancelling and scheduling it (schedule_draft) are each a
conditional update on `post_details.status = 'draft'`, so at most one of them wins a race.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence, cast

from sqlalchemy import Row, Select, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, contains_eager, joinedload, sessionmaker

from app.db import new_id, rowcount
from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    Client, Company, PostDetail, PostMedia, PostSchedule, PublishAttempt, SocialAccount,
    UTCDateTime,
    new_uuid,
)
from app.services import idempotency
from app.services import media as media_store
from app.services.limits import MAX_MEDIA, MAX_PARTS, MediaInfo, check_media_url, check_post
from app.services.media import MediaRef
from app.statuses import EDITABLE, RETRYABLE, AccountStatus, PostStatus, QueueStatus
from app.timeutil import EARLIEST, LATEST, at_most, parse_instant
from worker.queue import in_transaction, requeue
from worker.retry import MAX_ATTEMPTS



@dataclass(frozen=True)
class NewPost:
    """What a user asks for."""

    account_ids: list[str]
    content: str
    # A UTC instant, or the time as written: read in `timezone`, else (no offset) in the
    # company's time zone. None: the posts are drafts.
    run_at: datetime | str | None
    timezone: str | None = None
    media_urls: tuple[str, ...] = ()
    client_id: str | None = None
    # Every media item in order (stored media, then URLs) with alt text; when empty,
    # `media_urls` are the items.
    media: tuple[MediaRef, ...] = ()
    parts: tuple[str, ...] = ()        # a thread: replies after `content`, each to the previous
    first_comment: str | None = None   # posted on the post right after it; "" is none
    # The API's "must be in the future": checked after the accounts are found, so a request
    # naming no account of this company is 404 whatever its time (the order the document states).
    not_before: datetime | None = None
    evergreen: bool = False                 # to be published again by evergreen rotation
    evergreen_source_id: str | None = None  # the evergreen post this one is a rotation's copy of


@dataclass(frozen=True)
class Scheduled:
    """What schedule_post did: the posts it created (none on a replay) and the answer `render`
    made of them, or the answer stored for the Idempotency-Key when this is a replay."""

    posts: list[PostDetail]
    answer: idempotency.Answer
    replayed: bool = False


@dataclass(frozen=True)
class PostFilter:
    status: str | None = None
    client_id: str | None = None
    social_account_id: str | None = None
    run_from: datetime | None = None
    run_to: datetime | None = None


# -- create ---------------------------------------------------------------------------------

def schedule_post(db: Session | sessionmaker[Session], company_id: str, request: NewPost,
                  now: datetime, max_attempts: int = MAX_ATTEMPTS, *,
                  idempotency_key: str | None = None,
                  render: Callable[[list[PostDetail]], idempotency.Answer] = lambda posts: (201, {})
                  ) -> Scheduled:
    """All the posts of one request, sharing a group id, in one transaction, committed; the one
    service the API and the CLI share. With `idempotency_key`, a repeat of the same request
    creates nothing and gets the first answer back (`render` makes the answer stored)."""
    if isinstance(db, sessionmaker):
        with db() as session:
            return schedule_post(session, company_id, request, now, max_attempts,
                                 idempotency_key=idempotency_key, render=render)
    body_hash = "" if idempotency_key is None else idempotency.request_hash(_as_json(request))
    request = with_instant(db, company_id, request)
    created: list[PostDetail] = []

    def create(session: Session) -> idempotency.Answer:
        created.extend(create_posts(session, company_id, request, now, max_attempts,
                                    idempotency_key))
        return render(created)

    answer, replayed = idempotency.run_once(db, company_id, idempotency_key, body_hash, now,
                                            create)
    return Scheduled(created, answer, replayed)


def with_instant(session: Session, company_id: str, request: NewPost) -> NewPost:
    """The request with its time read as a UTC instant (in the company's zone, if it must be)."""
    if request.run_at is None and request.timezone is not None:
        raise InvalidInput("timezone only says how to read scheduledAt: send both",
                           fields={"timezone": "send scheduledAt with it"})
    if request.run_at is None or isinstance(request.run_at, datetime):
        return request
    # The company's zone is read in `session`: a second one would wait for its lock on SQLite.
    tz_name = zone_for(request.run_at, request.timezone, lambda: company_zone(session, company_id))
    return replace(request, run_at=when(request.run_at, tz_name, None), timezone=tz_name)


def _as_json(request: NewPost) -> dict:
    """The request as the user wrote it, for the Idempotency-Key's "same request" check."""
    return {name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(request).items() if name != "not_before"}


def create_posts(session: Session, company_id: str, request: NewPost, now: datetime,
                 max_attempts: int = MAX_ATTEMPTS, idempotency_key: str | None = None) -> list[PostDetail]:
    """The posts of `request` inside the caller's transaction; every check comes first."""
    conn = session.connection()
    posts = []
    for planned in plan_posts(session, company_id, request, now, max_attempts, idempotency_key):
        # Core INSERTs: the ORM's flush of the same two rows was the largest single cost of
        # POST /schedule-post (bench/README.md). The objects returned describe the rows; they
        # are not in the session. A draft has no schedule row: the worker cannot see it.
        conn.execute(insert(PostDetail.__table__), planned.detail)
        if planned.media:  # plain mediaUrls need no rows: the worker reads them from the post
            conn.execute(insert(PostMedia.__table__), planned.media)
        post = PostDetail(**planned.detail, account=planned.account)
        if planned.schedule is not None:
            planned.schedule["id"] = new_id(conn.execute(insert(PostSchedule.__table__),
                                                         planned.schedule))
            post.schedule = PostSchedule(**planned.schedule)
        if planned.media:
            post.media_items = [PostMedia(**row) for row in planned.media]
        posts.append(post)
    return posts


@dataclass
class PlannedPost:
    """The rows one post will be: checked, not yet inserted."""

    detail: dict
    schedule: dict | None  # None: a draft
    account: SocialAccount
    media: list[dict]  # its post_media rows (stored media, or URLs with alt text); [] for none


def plan_posts(session: Session, company_id: str, request: NewPost, now: datetime,
               max_attempts: int = MAX_ATTEMPTS, idempotency_key: str | None = None,
               known_accounts: dict[str, SocialAccount] | None = None) -> list[PlannedPost]:
    """Every check of `request` (media, accounts, time, platform limits, client), then the rows
    of its posts, one per account. `known_accounts`: accounts read before (a bulk import's),
    filled with those this call reads."""
    refs = list(request.media) or [MediaRef(url=u) for u in request.media_urls]
    _check_media(request.media_urls)
    _check_count(refs)
    _check_parts(request.parts)
    if not request.account_ids:
        raise InvalidInput("name at least one social account",
                           fields={"socialAccountIds": "name at least one account"})
    accounts = _accounts(session, company_id, request.account_ids, known_accounts)
    if request.not_before is not None and request.run_at is not None:
        check_future(cast(datetime, request.run_at), request.not_before)  # read by with_instant
    first_comment = request.first_comment or None
    infos = _media_infos(session, company_id, refs)
    for account in accounts:
        _check_for_platform(account, request.content, list(request.media_urls), infos,
                            list(request.parts), first_comment)
    if request.client_id is not None:
        _client(session, company_id, request.client_id)
    group_id = str(uuid.uuid4())
    draft = request.run_at is None
    planned = []
    for account in accounts:
        post_id = new_uuid()
        detail = dict(id=post_id, company_id=company_id,
                      client_id=request.client_id or account.client_id,
                      social_account_id=account.id, group_id=group_id, content=request.content,
                      media_urls=list(request.media_urls), timezone=request.timezone,
                      parts=list(request.parts) or None, first_comment=first_comment,
                      status=PostStatus.DRAFT if draft else PostStatus.PENDING,
                      idempotency_key=idempotency_key, created_at=now, updated_at=now,
                      evergreen=request.evergreen,
                      evergreen_source_id=request.evergreen_source_id)
        schedule = None if draft else _schedule_row(  # run_at read by with_instant
            post_id, cast(datetime, request.run_at), max_attempts, now)
        media = media_store.post_media_rows(post_id, refs) if request.media else []
        planned.append(PlannedPost(detail, schedule, account, media))
    return planned


def insert_planned(session: Session, planned: list[PlannedPost], batch: int = 1000) -> None:
    """Many planned posts in multi-row INSERTs (a bulk import): details, their media, then
    schedules."""
    conn = session.connection()
    details = [p.detail for p in planned]
    media = [row for p in planned for row in p.media]
    schedules = [p.schedule for p in planned if p.schedule is not None]
    for rows, table in ((details, PostDetail.__table__), (media, PostMedia.__table__),
                        (schedules, PostSchedule.__table__)):
        for start in range(0, len(rows), batch):
            conn.execute(insert(table), rows[start:start + batch])


def _schedule_row(post_id: str, run_at: datetime, max_attempts: int, now: datetime) -> dict:
    """The queue's row for a post: pending, due at `run_at`."""
    return dict(post_detail_id=post_id, run_at=run_at, status=QueueStatus.PENDING, attempts=0,
                max_attempts=max_attempts, deferrals=0, created_at=now, updated_at=now)


def when(scheduled_at: str, tz_name: str | None, now: datetime | None) -> datetime:
    """The UTC instant of `scheduledAt`; given `now`, it must also be after it."""
    try:
        run_at = parse_instant(scheduled_at, tz_name)
    except InvalidInput as exc:
        field = "timezone" if "time zone" in str(exc) else "scheduledAt"
        raise InvalidInput(str(exc), fields={field: str(exc)}) from None
    if now is not None:
        check_future(run_at, now)
    return run_at


def check_future(run_at: datetime, now: datetime) -> None:
    if run_at <= now:
        message = (f"scheduledAt must be in the future: {run_at.isoformat()} is before now "
                   f"({now.astimezone(timezone.utc).isoformat(timespec='seconds')})")
        raise InvalidInput(message, fields={"scheduledAt": "must be in the future"})


def zone_for(scheduled_at: str, tz_name: str | None,
             company_zone: Callable[[], str]) -> str | None:
    """The zone to read `scheduled_at` in: the one given, else the company's for a local time
    (no offset), else none (the offset decides). `company_zone` is asked only when needed."""
    if tz_name is not None:
        return tz_name
    text = scheduled_at.strip()
    try:
        local = not text.endswith(("Z", "z")) and datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        return None  # when() explains what is wrong with it
    return company_zone() if local else None


def company_zone(session: Session, company_id: str) -> str:
    company = session.get(Company, company_id)
    return company.timezone if company is not None else "UTC"


def owner_of_post(sessions: sessionmaker[Session], post_id: str) -> str:
    """The company a post belongs to, for the operator's CLI, which names posts by id alone."""
    with sessions() as session:
        company_id = session.scalar(select(PostDetail.company_id)
                                    .where(PostDetail.id == _uuid(post_id)))
    if company_id is None:
        raise NotFound(f"no post {post_id} (see `scheduler post list --company COMPANY_ID`)")
    return company_id


def _check_media(media_urls) -> None:
    if len(media_urls) > MAX_MEDIA:
        raise InvalidInput(f"at most {MAX_MEDIA} media URLs per post",
                           fields={"mediaUrls": f"at most {MAX_MEDIA}"})
    problems = {f"mediaUrls[{i}]": why for i, url in enumerate(media_urls)
                if (why := check_media_url(url))}
    if problems:
        raise InvalidInput("; ".join(f"{k} {v}" for k, v in problems.items()), fields=problems)


def _check_count(refs: list[MediaRef]) -> None:
    if len(refs) > MAX_MEDIA:
        raise InvalidInput(f"at most {MAX_MEDIA} media items (mediaIds and mediaUrls) per post",
                           fields={"mediaIds": f"at most {MAX_MEDIA} with mediaUrls"})


def _media_infos(session: Session, company_id: str, refs: list[MediaRef]) -> list[MediaInfo]:
    """What the limits need to know of each item; stored media of another company is 404."""
    stored = media_store.resolve_refs(session, company_id, refs)
    infos, ids, urls = [], 0, 0
    for ref, media in zip(refs, stored):
        if media is not None:
            infos.append(MediaInfo(f"mediaIds[{ids}]", media.mime_type, media.bytes, media.width,
                                   media.height, media.duration_seconds, ref.alt_text))
            ids += 1
        else:
            infos.append(MediaInfo(f"mediaUrls[{urls}]", alt_text=ref.alt_text))
            urls += 1
    return infos


def _check_parts(parts) -> None:
    if len(parts) > MAX_PARTS:
        raise InvalidInput(f"a thread takes at most {MAX_PARTS} parts after the post",
                           fields={"parts": f"at most {MAX_PARTS}"})


def _check_for_platform(account: SocialAccount, content: str, media_urls: list[str],
                        media: list[MediaInfo] | None = None, parts: Sequence[str] = (),
                        first_comment: str | None = None) -> None:
    problems = check_post(account.platform, content, media_urls, account.auth_meta, media,
                          parts, first_comment)
    if problems:
        name = account.display_name or account.external_id
        raise InvalidInput("; ".join(f"{k} {v} (account {name})" for k, v in problems.items()),
                           fields=problems)


# What creating a post reads of its accounts (not the token): a Core SELECT of these columns,
# on the API's hot path, costs about 10 % less CPU than an ORM load of the whole row.
_ACCOUNT_COLUMNS = [SocialAccount.__table__.c[name] for name in (
    "id", "company_id", "client_id", "platform", "external_id", "display_name", "status",
    "auth_meta")]


def _accounts(session: Session, company_id: str, account_ids: list[str],
              known: dict[str, SocialAccount] | None = None) -> list[SocialAccount]:
    """The accounts, in the order asked, as transient objects holding only _ACCOUNT_COLUMNS;
    those in `known` are not read again, and those read are added to it."""
    unique = list(dict.fromkeys(account_ids))
    found = {} if known is None else known
    table = SocialAccount.__table__
    missing = [a for a in unique if a not in found]
    if missing:
        found.update({row.id: SocialAccount(**row._mapping) for row in session.connection().execute(
            select(*_ACCOUNT_COLUMNS).where(table.c.id.in_(missing),
                                            table.c.company_id == company_id))})
    for account_id in unique:
        account = found.get(account_id)
        if account is None:
            raise NotFound(f"no social account {account_id} in this company")
        if account.status != AccountStatus.ACTIVE:
            raise Conflict(f"the {account.platform} account {account.display_name or account_id} "
                           "needs to be reconnected before posts can be scheduled on it")
    return [found[a] for a in unique]


def _client(session: Session, company_id: str, client_id: str) -> Client:
    client = session.get(Client, client_id)
    if client is None or client.company_id != company_id:
        raise NotFound(f"no client {client_id} in this company")
    return client


# -- read -----------------------------------------------------------------------------------

def list_posts(sessions: sessionmaker[Session], company_id: str, filters: PostFilter,
               limit: int, cursor: str | None = None) -> tuple[list[PostDetail], str | None]:
    """One page in (run_at, id) order and the cursor of the next page (None on the last)."""
    with sessions() as session:
        if filters.client_id:
            _client(session, company_id, filters.client_id)
        if filters.social_account_id:
            account = session.get(SocialAccount, filters.social_account_id)
            if account is None or account.company_id != company_id:
                raise NotFound(f"no social account {filters.social_account_id} in this company")
        query = _filtered(_posts(company_id), filters)
        if cursor:
            run_at, post_id = decode_cursor(cursor)
            query = query.where(or_(_RUN_AT > run_at,
                                    and_(_RUN_AT == run_at, PostDetail.id > post_id)))
        rows = list(session.scalars(query.order_by(_RUN_AT, PostDetail.id)
                                    .limit(limit + 1)).unique())
    page = rows[:limit]
    more = len(rows) > limit
    return page, encode_cursor(run_at_of(page[-1]), page[-1].id) if more else None


# Drafts have no schedule row (no time): they list after every scheduled post, as if at LATEST.
_RUN_AT = func.coalesce(PostSchedule.run_at, literal(LATEST, UTCDateTime))


def run_at_of(post: PostDetail) -> datetime:
    return LATEST if post.schedule is None else post.schedule.run_at


def _posts(company_id: str) -> Select:
    return (select(PostDetail)
            .outerjoin(PostSchedule, PostSchedule.post_detail_id == PostDetail.id)
            .options(contains_eager(PostDetail.schedule), joinedload(PostDetail.account))
            .where(PostDetail.company_id == company_id))


def _filtered(query: Select, f: PostFilter) -> Select:
    conditions = [
        (f.status, lambda: PostDetail.status == f.status),
        (f.client_id, lambda: PostDetail.client_id == f.client_id),
        (f.social_account_id, lambda: PostDetail.social_account_id == f.social_account_id),
        (f.run_from, lambda: PostSchedule.run_at >= f.run_from),
        (f.run_to, lambda: PostSchedule.run_at < f.run_to),
    ]
    return query.where(*[make() for value, make in conditions if value is not None])


# A cursor is the last row's (run_at, id): run_at as microseconds after EARLIEST, the id as
# 32 hex digits. Every string the pattern admits is a position, so the document can say exactly
# what the server takes; clients should still treat it as opaque.
_CURSOR_SPAN = (LATEST - EARLIEST) // timedelta(microseconds=1)
CURSOR_PATTERN = f"^(?:{at_most(_CURSOR_SPAN)})-[0-9a-f]{{32}}$"


def encode_cursor(run_at: datetime, post_id: str) -> str:
    micros = (run_at.astimezone(timezone.utc) - EARLIEST) // timedelta(microseconds=1)
    return f"{micros}-{uuid.UUID(post_id).hex}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidInput("the cursor is not one this API gave out: pass nextCursor unchanged",
                           fields={"cursor": "not a cursor from this API"})
    micros, _, post_id = cursor.partition("-")
    return EARLIEST + timedelta(microseconds=int(micros)), str(uuid.UUID(hex=post_id))


def get_post(sessions: sessionmaker[Session], company_id: str,
             post_id: str) -> tuple[PostDetail, list[PublishAttempt]]:
    """A post and its attempts, oldest first."""
    with sessions() as session:
        post = _post(session, company_id, post_id)
        if post.schedule is None:
            return post, []
        attempts = list(session.scalars(
            select(PublishAttempt).where(PublishAttempt.post_schedule_id == post.schedule.id)
            .order_by(PublishAttempt.attempt, PublishAttempt.id)))
    return post, attempts


def _post(session: Session, company_id: str, post_id: str) -> PostDetail:
    if _uuid(post_id) is None:
        raise NotFound(f"no post {post_id} in this company")
    post = session.scalars(_posts(company_id).where(PostDetail.id == post_id)).first()
    if post is None:
        raise NotFound(f"no post {post_id} in this company")
    return post


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


# -- change ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PostChange:
    content: str | None = None
    scheduled_at: str | None = None
    timezone: str | None = None
    media_urls: tuple[str, ...] | None = None
    media: tuple[MediaRef, ...] | None = None  # every item, replacing the post's (see NewPost)
    parts: tuple[str, ...] | None = None     # () removes the thread
    first_comment: str | None = None         # "" removes it
    evergreen: bool | None = None


def edit_post(sessions: sessionmaker[Session], company_id: str, post_id: str, change: PostChange,
              now: datetime) -> PostDetail:
    """New content, media, parts or time for a post the worker has not claimed yet; what a
    platform already has of it (a thread's first parts, published before a retry) stays."""
    if all(value is None for value in vars(change).values()):
        what = "content, mediaIds, mediaUrls, parts, firstComment, scheduledAt or evergreen"
        raise InvalidInput(f"nothing to change: send {what}", fields={"body": f"send {what}"})
    if change.evergreen is not None and all(
            value is None for name, value in vars(change).items() if name != "evergreen"):
        with sessions.begin() as session:
            post = _post(session, company_id, post_id)
            post.evergreen, post.updated_at = change.evergreen, now
        return post
    if change.timezone is not None and change.scheduled_at is None:
        raise InvalidInput("timezone only says how to read scheduledAt: send both",
                           fields={"timezone": "send scheduledAt with it"})
    with sessions.begin() as session:
        post = _post(session, company_id, post_id)
        content = post.content if change.content is None else change.content
        media = list(post.media_urls) if change.media_urls is None else list(change.media_urls)
        parts = list(post.parts or ()) if change.parts is None else list(change.parts)
        first_comment = post.first_comment if change.first_comment is None else (
            change.first_comment or None)
        _check_media(media)
        if change.media is not None or change.media_urls is not None:
            refs = list(change.media or ()) or [MediaRef(url=u) for u in media]
        else:
            refs = media_store.refs_of(session, post) or [MediaRef(url=u) for u in media]
        _check_count(refs)
        _check_parts(parts)
        _check_for_platform(post.account, content, media, _media_infos(session, company_id, refs),
                            parts, first_comment)
        if post.published_parts and (change.media is not None or (content, media, parts, first_comment) != (
                post.content, list(post.media_urls), list(post.parts or ()), post.first_comment)):
            raise Conflict(f"{len(post.published_parts)} steps of this post are already on "
                           f"{post.account.platform}: its text can no longer change (only its "
                           "time); cancel it and schedule a new post instead")
        if post.status == PostStatus.DRAFT:
            if change.scheduled_at is not None:
                raise InvalidInput(
                    "the post is a draft: queue it with POST /scheduled-posts/{id}/schedule",
                    fields={"scheduledAt": "a draft is scheduled by POST .../schedule"})
            _hold_draft(session, post, "edited", updated_at=now)
        else:
            schedule_values: dict[str, datetime | None] = {"updated_at": now}
            if change.media is not None or (content, media) != (post.content, list(post.media_urls)):
                # What an earlier attempt made on the platform (an Instagram container) holds
                # the old caption or media: the next attempt makes its own.
                schedule_values["platform_draft_id"] = None
            if change.scheduled_at is not None:
                tz_name = zone_for(change.scheduled_at, change.timezone,
                                   lambda: company_zone(session, company_id))
                schedule_values["run_at"] = when(change.scheduled_at, tz_name, now)
            _hold_pending(session, post, "edited", **schedule_values)
            if change.scheduled_at is not None:
                post.timezone = tz_name
        post.content, post.media_urls, post.updated_at = content, media, now
        post.parts, post.first_comment = parts or None, first_comment
        if change.media is not None or change.media_urls is not None:
            session.execute(delete(PostMedia).where(PostMedia.post_detail_id == post.id))
            if change.media:
                session.execute(insert(PostMedia), media_store.post_media_rows(post.id, refs))
            session.flush()
            session.expire(post, ["media_items"])
            post.media_items  # loaded now: the caller reads it after the session ends
        if change.evergreen is not None:
            post.evergreen = change.evergreen
        session.flush()
        _refresh_schedule(session, post)
    return post


def schedule_draft(sessions: sessionmaker[Session], company_id: str, post_id: str,
                   scheduled_at: str, tz_name: str | None, now: datetime,
                   max_attempts: int = MAX_ATTEMPTS) -> PostDetail:
    """draft -> pending: its schedule row, due at `scheduled_at` (read as POST /schedule-post
    reads it: a future time, a local one in `tz_name` or the company's zone) or, for "best", at
    the next free best time of its account (app/services/best_times.py)."""
    from app.services import best_times  # it reads posts' tables; imported when needed

    with sessions.begin() as session:
        post = _post(session, company_id, post_id)
        if post.status != PostStatus.DRAFT:
            raise Conflict(f"the post is {post.status}, not a draft: change its time with PATCH")
        _accounts(session, company_id, [post.social_account_id])  # still active?
        _check_media(post.media_urls)
        refs = media_store.refs_of(session, post) or [MediaRef(url=u) for u in post.media_urls]
        _check_for_platform(post.account, post.content, list(post.media_urls),
                            _media_infos(session, company_id, refs), list(post.parts or ()),
                            post.first_comment)
        if scheduled_at == BEST:
            if tz_name is not None:
                raise InvalidInput("timezone only says how to read a time, not \"best\"",
                                   fields={"timezone": "not with \"best\""})
            run_at = best_times.next_free_best_time(session, post.social_account_id, now, now=now)
            tz_name = company_zone(session, company_id)
        else:
            tz_name = zone_for(scheduled_at, tz_name, lambda: company_zone(session, company_id))
            run_at = when(scheduled_at, tz_name, now)
        _hold_draft(session, post, "scheduled", status=PostStatus.PENDING, timezone=tz_name,
                    updated_at=now)
        schedule = _schedule_row(post.id, run_at, max_attempts, now)
        schedule["id"] = new_id(session.connection().execute(
            insert(PostSchedule.__table__), schedule))
        post.status, post.timezone, post.updated_at = PostStatus.PENDING, tz_name, now
        session.flush()
        session.expunge(post)
        post.schedule = PostSchedule(**schedule)
    return post


BEST = "best"


def _hold_draft(session: Session, post: PostDetail, verb: str, **values) -> None:
    """The conditional update of a draft: it matches (and locks) the row only while it is one,
    so a draft scheduled, edited and cancelled at once ends in exactly one of them."""
    result = session.execute(update(PostDetail).where(
        PostDetail.id == post.id, PostDetail.status == PostStatus.DRAFT).values(**values)
        .execution_options(synchronize_session=False))
    if rowcount(result) != 1:
        raise Conflict(f"the post is no longer a draft (it was scheduled or cancelled "
                       f"meanwhile): it cannot be {verb} as one")


def _refresh_schedule(session: Session, post: PostDetail) -> None:
    if post.schedule is not None:
        session.refresh(post.schedule)


def cancel_post(sessions: sessionmaker[Session], company_id: str, post_id: str,
                now: datetime) -> PostDetail:
    """pending (or draft) -> cancelled; the worker will never see it again."""
    with sessions.begin() as session:
        post = _post(session, company_id, post_id)
        if post.status == PostStatus.DRAFT:
            _hold_draft(session, post, "cancelled", status=PostStatus.CANCELLED, updated_at=now)
        else:
            _hold_pending(session, post, "cancelled", status=QueueStatus.CANCELLED,
                          updated_at=now)
        post.status, post.updated_at = PostStatus.CANCELLED, now
        session.flush()
        _refresh_schedule(session, post)
    return post


def _hold_pending(session: Session, post: PostDetail, verb: str, **values) -> None:
    """The conditional update: it matches (and locks) the row only while nobody has claimed it."""
    result = session.execute(update(PostSchedule).where(
        PostSchedule.post_detail_id == post.id, PostSchedule.status.in_(EDITABLE)).values(**values))
    if rowcount(result) != 1:
        status = session.scalar(select(PostSchedule.status)
                                .where(PostSchedule.post_detail_id == post.id))
        raise Conflict(f"the post is {_describe(status)}: only a pending (or waiting) post "
                       f"can be {verb}")


def _describe(schedule_status: str | None) -> str | None:
    said: dict[str | None, str] = {QueueStatus.PROCESSING: "being published right now",
                                   QueueStatus.DONE: "already published"}
    return said.get(schedule_status, schedule_status)


def retry_post(sessions: sessionmaker[Session], now: datetime, *, company_id: str | None = None,
               post_id: str | None = None, schedule_id: int | None = None) -> Row:
    """A failed (or missed) post back to pending, due now, attempts reset, in one transaction;
    the schedule row as it is then.

    Found by post id within a company (the API) or by schedule id (the operator's CLI).
    """
    table = PostSchedule.__table__

    def work(conn: Connection) -> Row:
        found = schedule_id if post_id is None else _schedule_of(conn, company_id, post_id)
        status = requeue(conn, found, now)
        if status is None:
            raise NotFound(f"no schedule {schedule_id} (see `scheduler queue stats`)")
        if status not in RETRYABLE:
            what = f"schedule {found}" if post_id is None else "the post"
            raise Conflict(f"{what} is {_describe(status)}, not a failed or missed post: "
                           "only those can be retried")
        return conn.execute(select(table).where(table.c.id == found)).one()

    return in_transaction(sessions, work)


def _schedule_of(conn: Connection, company_id: str | None, post_id: str) -> int:
    found = None if _uuid(post_id) is None else conn.execute(
        select(PostSchedule.id).select_from(PostDetail)
        .outerjoin(PostSchedule, PostDetail.id == PostSchedule.post_detail_id)
        .where(PostDetail.id == post_id, PostDetail.company_id == company_id)).first()
    if found is None:
        raise NotFound(f"no post {post_id} in this company")
    if found.id is None:
        raise Conflict("the post is a draft, not a failed or missed post: schedule it with "
                       "POST /scheduled-posts/{id}/schedule")
    return found.id
