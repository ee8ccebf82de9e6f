"""Instagram (a professional account, through the Graph API with Facebook Login).

Two steps: `POST /{ig-user-id}/media` makes a container (image_url or video_url, caption),
`GET /{container-id}?fields=status_code` until FINISHED, then `POST /{ig-user-id}/media_publish`
with `creation_id`. The container is remembered in the queue row as soon as it exists, so a
retry (or the run after a crash) publishes it instead of making a second one.
external_id is the Instagram user id; the post id is the IG media id media_publish returns.
Metrics: the media's like and comment counts and insights (views, reach, saved, shares), 50
media a call (`GET /?ids=`).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from app.services.metrics import Measured
from app.statuses import Platform
from worker.publishers.base import (
    Account, NotReadyError, PermanentError, PostToPublish, PublishResult,
)
from worker.publishers.facebook import is_video
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

    def __init__(self, settings, http: HttpClient, sleep=time.sleep):
        self.graph = GraphClient(settings, http, self.name)
        self.poll_interval = settings.instagram_poll_interval
        self.poll_attempts = settings.instagram_poll_attempts
        self.sleep = sleep

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        container = self._reusable(post, account) or self._create(post, account)
        return self._publish_container(container, account)

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

    def _reusable(self, post: PostToPublish, account: Account) -> str | None:
        """The container an earlier attempt made, unless it can no longer be published."""
        if not post.draft_id:
            return None
        status = self._status(post.draft_id, account)
        if status == "PUBLISHED":
            raise PermanentError(
                f"{self.name}: the container {post.draft_id} of an earlier attempt is already "
                "published, but its media id is unknown: check the account", error_code="published")
        if status in ("EXPIRED", "ERROR"):
            post.keep_draft(None)  # dead: make a new one
            return None
        return post.draft_id

    def _create(self, post: PostToPublish, account: Account) -> str:
        if not post.media_urls:
            raise PermanentError("Instagram needs an image or a video: add a media URL to the post",
                                 error_code="no_media")
        user = account.external_id
        if len(post.media_urls) == 1:
            fields = {**_media_fields(post.media_urls[0]), "caption": post.content}
        else:
            children = [self.graph.created_id(self.graph.post(f"{user}/media", account, fields={
                **_media_fields(url, carousel_item=True), "is_carousel_item": "true"}), "id")
                for url in post.media_urls]
            fields = {"media_type": "CAROUSEL", "children": ",".join(children),
                      "caption": post.content}
        container = self.graph.created_id(self.graph.post(f"{user}/media", account, fields=fields),
                                          "id")
        post.keep_draft(container)
        return container

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


def _media_fields(url: str, carousel_item: bool = False) -> dict[str, str]:
    """A video goes in as a reel (Instagram's only video type for the feed now), or as VIDEO
    inside a carousel."""
    if not is_video(url):
        return {"image_url": url}
    return {"media_type": "VIDEO" if carousel_item else "REELS", "video_url": url}
