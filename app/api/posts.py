"""Scheduling and managing posts: thin views over app/services/posts.py."""
from __future__ import annotations

from flask import current_app, request
from sqlalchemy.orm import Session

from app.api.schemas import (
    AttemptOut, EditPostIn, PostListQuery, PostOut, PostPage, PostsCreated, PostWithAttempts,
    ScheduleDraftIn, SchedulePostIn, media_refs, plain_urls,
)
from app.api.spec import Api, sessions
from app.services import posts
from app.timeutil import utcnow

api = Api("posts", "posts")
NOT_PENDING = "The post is no longer pending (a worker has it, or it is finished)"


@api.route("POST", "/schedule-post", summary="Schedule a post on one or more accounts",
           body=SchedulePostIn, response=PostsCreated, status=201,
           conflicts="An account must be reconnected before posts can be scheduled on it",
           headers={"Idempotency-Key": "Repeat a request safely: the same key returns the first "
                                       "response and creates nothing"}, one_session=True)
def schedule_post(company_id: str, body: SchedulePostIn, db: Session):
    now, settings = utcnow(), current_app.extensions["scheduler"]["settings"]
    done = posts.schedule_post(db, company_id, new_post(body, now), now, settings.max_attempts,
                               idempotency_key=request.headers.get("Idempotency-Key"),
                               render=_created)
    (status, payload), replayed = done.answer, done.replayed
    return payload, status, {"Idempotent-Replayed": "true"} if replayed else {}


def new_post(body: SchedulePostIn, now) -> posts.NewPost:
    """What a POST /schedule-post body (or an imported CSV row) asks for, its time as written
    (None: drafts); posts.with_instant reads it, posts.create_posts checks the rest."""
    return posts.NewPost(body.account_ids, body.content, body.scheduledAt,
                         timezone=body.timezone, media_urls=plain_urls(body.mediaUrls) or (),
                         media=media_refs(body.mediaIds, body.mediaUrls) or (),
                         client_id=_str(body.clientId), not_before=now,
                         parts=tuple(body.parts), first_comment=body.firstComment,
                         evergreen=body.evergreen)


def _created(created: list) -> tuple[int, dict]:
    """The answer to a new schedule-post (kept for its Idempotency-Key's repeats)."""
    out = PostsCreated(groupId=created[0].group_id, posts=[PostOut.of(p) for p in created])
    return 201, out.model_dump(mode="json")


@api.route("GET", "/scheduled-posts", summary="The company's posts, filtered, a page at a time",
           query=PostListQuery, response=PostPage)
def list_posts(company_id: str, query: PostListQuery):
    filters = posts.PostFilter(status=query.status, client_id=_str(query.clientId),
                               social_account_id=_str(query.socialAccountId),
                               run_from=query.from_, run_to=query.to)
    page, cursor = posts.list_posts(sessions(), company_id, filters, query.limit, query.cursor)
    return PostPage(items=[PostOut.of(p) for p in page], nextCursor=cursor)


@api.route("GET", "/scheduled-posts/<post_id>", summary="One post with its attempt history",
           response=PostWithAttempts)
def get_post(company_id: str, post_id: str):
    post, attempts = posts.get_post(sessions(), company_id, post_id)
    return PostWithAttempts(**PostOut.fields_of(post),
                            attemptHistory=[AttemptOut.of(a) for a in attempts])


@api.route("PATCH", "/scheduled-posts/<post_id>",
           summary="New content, media, parts or time, while the post is still pending",
           body=EditPostIn, response=PostOut,
           conflicts=f"{NOT_PENDING}; or part of its thread is published and its text would change")
def edit_post(company_id: str, post_id: str, body: EditPostIn):
    change = posts.PostChange(
        content=body.content, scheduled_at=body.scheduledAt, timezone=body.timezone,
        media_urls=plain_urls(body.mediaUrls if body.mediaUrls is not None or body.mediaIds is None
                              else []),
        media=media_refs(body.mediaIds, body.mediaUrls),
        parts=tuple(body.parts) if body.parts is not None else None,
        first_comment=body.firstComment, evergreen=body.evergreen)
    return PostOut.of(posts.edit_post(sessions(), company_id, post_id, change, utcnow()))


@api.route("POST", "/scheduled-posts/<post_id>/schedule",
           summary='Queue a draft at a time or at "best" (its account\'s next free best time)',
           body=ScheduleDraftIn, response=PostOut, conflicts="The post is not a draft, or its "
           "account must be reconnected first")
def schedule_draft(company_id: str, post_id: str, body: ScheduleDraftIn):
    settings = current_app.extensions["scheduler"]["settings"]
    return PostOut.of(posts.schedule_draft(sessions(), company_id, post_id, body.scheduledAt,
                                           body.timezone, utcnow(), settings.max_attempts))


@api.route("DELETE", "/scheduled-posts/<post_id>", summary="Cancel a pending post or a draft",
           response=PostOut, conflicts=NOT_PENDING)
def cancel_post(company_id: str, post_id: str):
    return PostOut.of(posts.cancel_post(sessions(), company_id, post_id, utcnow()))


@api.route("POST", "/scheduled-posts/<post_id>/retry",
           summary="Put a failed or missed post back in the queue, due now", response=PostOut,
           conflicts="The post is not failed or missed")
def retry_post(company_id: str, post_id: str):
    sessions_ = sessions()
    posts.retry_post(sessions_, utcnow(), company_id=company_id, post_id=post_id)
    post, _ = posts.get_post(sessions_, company_id, post_id)
    return PostOut.of(post)


def _str(value) -> str | None:
    return None if value is None else str(value)
