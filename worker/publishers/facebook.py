"""A Facebook Page, through the Graph API with the Page access token.

Text (and a link) goes to `/{page-id}/feed`, one photo to `/{page-id}/photos`, several photos
are uploaded unpublished and attached to one feed post, a video goes to `/{page-id}/videos`.
external_id is the Page id; the post id is the answer's `post_id` (photos) or `id`. Metrics: the
posts' insights, reactions, comments and shares, 50 posts a call (`GET /?ids=`).
"""
from __future__ import annotations

import json
import re
from datetime import datetime

from app.services.metrics import Measured
from app.statuses import Platform
from worker.publishers.base import Account, PermanentError, PostToPublish, PublishResult
from worker.publishers.graph import METRICS_BATCH, GraphClient, insight_values
from worker.publishers.http import HttpClient

VIDEO = re.compile(r"\.(mp4|mov|m4v|avi|wmv|webm)(\?|#|$)", re.IGNORECASE)
LINK = re.compile(r"https?://\S+")


def is_video(url: str) -> bool:
    return bool(VIDEO.search(url))


class FacebookPublisher:
    platform = Platform.FACEBOOK

    def __init__(self, settings, http: HttpClient):
        self.graph = GraphClient(settings, http, "Facebook")

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        page, media = account.external_id, post.media_urls
        videos = [url for url in media if is_video(url)]
        if videos and len(media) > 1:
            raise PermanentError("Facebook: a Page post takes one video, or photos only; "
                                 "split it into two posts", error_code="media_mix")
        if videos:
            answer = self.graph.post(f"{page}/videos", account, creates=True,
                                     fields={"file_url": videos[0], "description": post.content})
        elif len(media) == 1:
            answer = self.graph.post(f"{page}/photos", account, creates=True,
                                     fields={"url": media[0], "message": post.content})
        elif media:
            photos = [self.graph.post(f"{page}/photos", account,
                                      fields={"url": url, "published": "false"})["id"]
                      for url in media]
            answer = self.graph.post(f"{page}/feed", account, creates=True, fields={
                "message": post.content,
                "attached_media": json.dumps([{"media_fbid": p} for p in photos])})
        else:
            fields = {"message": post.content}
            link = LINK.search(post.content)
            if link:
                fields["link"] = link.group()
            answer = self.graph.post(f"{page}/feed", account, fields=fields, creates=True)
        return PublishResult(self.graph.created_id(answer, "post_id", "id"))

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        """The Page's posts since `since` (GET /{page-id}/published_posts)."""
        return self.graph.find(f"{account.external_id}/published_posts", account, since,
                               "message", post.content)

    metrics_batch = METRICS_BATCH
    METRIC_FIELDS = ("insights.metric(post_impressions,post_clicks),"
                     "reactions.summary(total_count).limit(0),"
                     "comments.summary(total_count).limit(0),shares")

    def fetch_metrics(self, post_ids: list[str], account: Account) -> dict[str, Measured]:
        """Impressions and clicks from the post's insights; reactions count as likes."""
        out = {}
        for post_id, node in self.graph.many(post_ids, account, self.METRIC_FIELDS).items():
            insights = insight_values(node)
            out[post_id] = Measured(
                impressions=insights.get("post_impressions"), clicks=insights.get("post_clicks"),
                likes=_total(node, "reactions"), comments=_total(node, "comments"),
                shares=(node.get("shares") or {}).get("count", 0), raw=node)
        return out


def _total(node: dict, edge: str) -> int | None:
    return ((node.get(edge) or {}).get("summary") or {}).get("total_count")
