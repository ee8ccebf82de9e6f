"""A Facebook Page, through the Graph API with the Page access token.

Text (and a link) goes to `/{page-id}/feed`, one photo to `/{page-id}/photos`, several photos
are uploaded unpublished (each id kept for a retry) and attached to one feed post, a video goes
to `/{page-id}/videos`. Media come by URL (Facebook fetches them) or from the media store (the
worker uploads the file: a photo as `source`, a video in the chunks Facebook asks for).
The first comment goes to `/{post-id}/comments`, as the Page.
external_id is the Page id; the post id is the answer's `post_id` (photos) or `id`; metrics: the
posts' insights, reactions, comments and shares, 50 posts a call (`GET /?ids=`).
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

from app.services.limits import is_video_url
from app.services.metrics import Measured
from app.statuses import Platform
from worker.publishers.base import (
    Account, Drafts, Part, PermanentError, PostToPublish, PublishResult,
)
from worker.publishers.graph import METRICS_BATCH, GraphClient, insight_values
from worker.publishers.http import HttpClient

LINK = re.compile(r"https?://\S+")


def is_video_item(item) -> bool:
    """A stored medium is what its bytes are; a URL counts as a video by its extension."""
    if item.path is not None:
        return (item.mime_type or "").startswith("video/")
    return is_video_url(item.url)


def _photo(item) -> tuple[dict, dict | None]:
    """A photo's form fields, and its multipart file (None: Facebook fetches the URL)."""
    fields = {"alt_text_custom": item.alt_text} if item.alt_text else {}
    if item.path is None:
        return {**fields, "url": item.url}, None
    return fields, {"source": (Path(item.path).name, open(item.path, "rb"), item.mime_type)}


class FacebookPublisher:
    platform = Platform.FACEBOOK

    def __init__(self, settings, http: HttpClient):
        self.graph = GraphClient(settings, http, "Facebook")

    def publish(self, post: PostToPublish, account: Account) -> PublishResult:
        media = list(post.media)
        videos = [item for item in media if is_video_item(item)]
        if videos and len(media) > 1:
            raise PermanentError("Facebook: a Page post takes one video, or photos only; "
                                 "split it into two posts", error_code="media_mix")
        if videos:
            return PublishResult(self._video(post, account, videos[0]))
        if len(media) == 1:
            answer = self._photo(account, media[0], {"message": post.content}, creates=True)
        elif media:
            photos = self._unpublished_photos(post, account, media)
            answer = self.graph.post(f"{account.external_id}/feed", account, creates=True, fields={
                "message": post.content,
                "attached_media": json.dumps([{"media_fbid": p} for p in photos])})
        else:
            fields = {"message": post.content}
            link = LINK.search(post.content)
            if link:
                fields["link"] = link.group()
            answer = self.graph.post(f"{account.external_id}/feed", account, fields=fields,
                                     creates=True)
        return PublishResult(self.graph.created_id(answer, "post_id", "id"))

    def _photo(self, account: Account, item, fields: dict, creates: bool = False) -> dict:
        photo, files = _photo(item)
        try:
            return self.graph.post(f"{account.external_id}/photos", account, creates=creates,
                                   fields={**photo, **fields}, files=files)
        finally:
            for _, handle, _ in (files or {}).values():
                handle.close()

    def _unpublished_photos(self, post: PostToPublish, account: Account,
                            media: list) -> list[str]:
        """Each photo uploaded unpublished, to attach to one feed post; each id kept as it is
        made, so a retry attaches the photos an earlier attempt uploaded instead of again."""
        photos = list(Drafts.read(post.draft_id).children[:len(media)])
        for item in media[len(photos):]:
            answer = self._photo(account, item, {"published": "false"})
            photos.append(self.graph.created_id(answer, "id"))
            post.keep_draft(Drafts(photos).dump())
        return photos

    def _video(self, post: PostToPublish, account: Account, item) -> str:
        """By URL (`file_url`: Facebook fetches it), or a stored file sent in the chunks
        Facebook asks for (`upload_phase` start, transfer..., finish): one chunk in memory."""
        page = f"{account.external_id}/videos"
        if item.path is None:
            answer = self.graph.post(page, account, creates=True,
                                     fields={"file_url": item.url, "description": post.content})
            return self.graph.created_id(answer, "id")
        started = self.graph.post(page, account, fields={
            "upload_phase": "start", "file_size": str(os.path.getsize(item.path))})
        session, video = started.get("upload_session_id"), self.graph.created_id(started, "video_id")
        start, end = int(started.get("start_offset", 0)), int(started.get("end_offset", 0))
        with open(item.path, "rb") as source:
            while start < end:
                source.seek(start)
                chunk = source.read(end - start)
                answer = self.graph.post(page, account, fields={
                    "upload_phase": "transfer", "upload_session_id": session,
                    "start_offset": str(start)}, files={
                    "video_file_chunk": (Path(item.path).name, chunk, item.mime_type)})
                start, end = int(answer["start_offset"]), int(answer["end_offset"])
        self.graph.post(page, account, creates=True, fields={
            "upload_phase": "finish", "upload_session_id": session, "description": post.content})
        return video

    def find_existing(self, post: PostToPublish, account: Account, since: datetime) -> str | None:
        """The Page's posts since `since` (GET /{page-id}/published_posts)."""
        return self.graph.find(f"{account.external_id}/published_posts", account, since,
                               "message", post.content)

    def comment(self, post: PostToPublish, account: Account, part: Part) -> PublishResult:
        return self.graph.comment(account, part)

    def find_comment(self, post: PostToPublish, account: Account, part: Part,
                     since: datetime) -> str | None:
        """The comment with the part's text on the Page post (GET /{post-id}/comments)."""
        return self.graph.find(f"{part.to}/comments", account, since, "message", part.text)

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
