"""Instagram (a professional account, through the Graph API with Facebook Login).

Two steps: `POST /{ig-user-id}/media` makes a container (image_url or video_url, caption; a
carousel: one child container per item, then the parent naming them),
`GET /{container-id}?fields=status_code` until FINISHED, then `POST /{ig-user-id}/media_publish`
with `creation_id`. Every container is remembered in the queue row as soon as it exists, so a
retry (or the run after a crash) reuses it instead of making a second one. Stored media go in by
a signed URL (Instagram fetches every medium itself). The first comment goes to
`/{ig-media-id}/comments`.
external_id is the Instagram user id; the post id is the IG media id media_publish returns.
Metrics: the media's like and comment counts and insights (views, reach, saved, shares), 50
media a call (`GET /?ids=`).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from app.services.metrics import Measured
from app.statuses import Platform
from worker import media as post_media
from worker.publishers.base import (
    Account, Drafts, NotReadyError, Part, PermanentError, PostToPublish, PublishResult,
)
from worker.publishers.facebook import is_video_item
from worker.publishers.graph import METRICS_BATCH, GraphClient, insight_values
from worker.publishers.http import HttpClient

NOT_READY_WAIT = timedelta(minutes=1)


class InstagramPublisher:
    """Also the base of Threads' publisher: the same container, status and publish steps under
    other names (the class attributes)."""

    platform = Platform.INSTAGRAM
    name = "Instagram"
    publish_edge = "media_publish"
    status_field, status_fields = "status_code", "status_code,status"
    container_edge, text_field = "media", "caption"  # Threads: threads, text

    def __init__(self, settings, http: HttpClient, sleep=time.sleep):
        self.graph = GraphClient(settings, http, self.name)
        self.settings = settings
        self.poll_interval = settings.instagram_poll_interval
        self.poll_attempts = settings.instagram_poll_attempts
        self.sleep = sleep

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        container = self._alive(Drafts.read(post.draft_id).parent, account, published_fails=True)
        return self._publish_container(container or self._create(post, account), account)

    def _publish_container(self, container: str, account: Account) -> PublishResult:
        """Once the container is FINISHED: published, the new post's id."""
        self._wait_until_finished(container, account)
        answer = self.graph.post(f"{account.external_id}/{self.publish_edge}", account,
                                 creates=True, fields={"creation_id": container})
        return PublishResult(self.graph.created_id(answer, "id"))

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        """The account's recent media with the same caption (GET /{ig-user-id}/media)."""
        return self.graph.find(f"{account.external_id}/media", account, since, "caption",
                               post.content)

    metrics_batch = METRICS_BATCH
    METRIC_FIELDS = "like_count,comments_count,insights.metric(views,reach,saved,shares)"

    def fetch_metrics(self, post_ids: list[str], account: Account) -> dict[str, Measured]:
        """Views stand for impressions (Instagram retired media impressions in 2025), or reach
        where views are not given; Instagram gives no clicks for a media."""
        out = {}
        for media_id, node in self.graph.many(post_ids, account, self.METRIC_FIELDS).items():
            insights = insight_values(node)
            out[media_id] = Measured(
                impressions=insights.get("views", insights.get("reach")),
                likes=node.get("like_count"), comments=node.get("comments_count"),
                shares=insights.get("shares"), saves=insights.get("saved"), raw=node)
        return out

    def comment(self, post: PostToPublish, account: Account, part: Part) -> PublishResult:
        return self.graph.comment(account, part)

    def find_comment(self, post: PostToPublish, account: Account, part: Part,
                     since: datetime) -> str | None:
        """The comment with the part's text on the media (GET /{ig-media-id}/comments)."""
        return self.graph.find(f"{part.to}/comments", account, since, "text", part.text)

    def _alive(self, container: str | None, account: Account,
               published_fails: bool = False) -> str | None:
        """A container an earlier attempt made, unless it can no longer be published."""
        if not container:
            return None
        status = self._status(container, account)
        if status == "PUBLISHED" and published_fails:
            raise PermanentError(
                f"{self.name}: the container {container} of an earlier attempt is already "
                "published, but its media id is unknown: check the account", error_code="published")
        return None if status in ("EXPIRED", "ERROR") else container  # dead: make a new one

    def _create(self, post: PostToPublish, account: Account) -> str:
        """The post's container: one for a single image or reel; for a carousel one per item
        (each kept as soon as it exists, and reused by the next attempt while alive), then the
        parent once every child is ready."""
        if not post.media:
            raise PermanentError("Instagram needs an image or a video: add a media URL to the post",
                                 error_code="no_media")
        user, media = account.external_id, [self._typed(m) for m in _media(post, self.settings, self.name)]
        children: list[str] = []
        if len(media) == 1:
            fields = {**media[0], self.text_field: post.content}
        else:
            kept = Drafts.read(post.draft_id).children
            made: list[str | None] = list(kept[:len(media)]) + [None] * (len(media) - len(kept[:len(media)]))
            for i, item in enumerate(media):
                made[i] = self._alive(made[i], account) or self._child(user, item, account)
                post.keep_draft(Drafts([c for c in made if c]).dump())
            children = [c for c in made if c]  # every one made or kept by now
            for child in children:
                self._wait_until_finished(child, account)
            fields = {"media_type": "CAROUSEL", "children": ",".join(children),
                      self.text_field: post.content}
        container = self.graph.created_id(self.graph.post(f"{user}/{self.container_edge}", account,
                                                          fields=fields), "id")
        post.keep_draft(Drafts(children, container).dump())
        return container

    def _typed(self, item: dict[str, str]) -> dict[str, str]:
        """A medium's container fields as this platform wants them (Instagram: as made)."""
        return item

    def _child(self, user: str, item: dict[str, str], account: Account) -> str:
        if item.get("media_type") == "REELS":  # a video inside a carousel
            item = {**item, "media_type": "VIDEO"}
        return self.graph.created_id(self.graph.post(f"{user}/{self.container_edge}", account,
                                                     fields={**item, "is_carousel_item": "true"}),
                                     "id")

    def _wait_until_finished(self, container: str, account: Account) -> None:
        for check in range(self.poll_attempts):
            status = self._status(container, account)
            if status in ("FINISHED", "PUBLISHED"):
                return
            if status in ("ERROR", "EXPIRED"):
                raise PermanentError(f"{self.name} could not process the media (container "
                                     f"{container} is {status}): check the media URL and format",
                                     error_code=f"container_{status.lower()}")
            if check + 1 < self.poll_attempts:
                self.sleep(self.poll_interval)
        raise NotReadyError(f"{self.name} is still processing the post (container {container}); "
                            "the post will be tried again shortly", retry_after=NOT_READY_WAIT,
                            error_code="container_in_progress")

    def _status(self, container: str, account: Account) -> str:
        return str(self.graph.get(container, account, {"fields": self.status_fields})
                   .get(self.status_field) or "")


def _media(post: PostToPublish, settings, name: str = "Instagram") -> list[dict[str, str]]:
    """Each medium's container fields, in the post's order: stored media by a signed URL under
    SCHEDULER_PUBLIC_URL (Instagram fetches every medium itself), URLs as given. A video goes in
    as a reel (Instagram's only video type for the feed now), or as VIDEO inside a carousel."""
    media = []
    for item in post.media:
        if item.path is not None and not settings.public_url:
            raise PermanentError(f"{name} fetches media by URL, and the media store has no "
                                 "public address to sign one with: set SCHEDULER_PUBLIC_URL",
                                 error_code="no_public_url")
        url, video = post_media.public_url(item, settings), is_video_item(item)
        alt = {"alt_text": item.alt_text} if item.alt_text and not video else {}
        media.append(({"media_type": "REELS", "video_url": url} if video else {"image_url": url})
                     | alt)
    return media
