"""X media upload (API v2): an image in one multipart POST /2/media/upload; a video or a GIF
(tweet_gif, so an animated one stays animated) chunked: initialize, append of at most CHUNK
bytes each, finalize, then GET /2/media/upload?command=STATUS until processed; alt text by
POST /2/media/metadata.

An upload's media id is remembered on the post at once (post.remember_media), so a retry after a
crash or a processing wait reuses it for as long as X keeps it (REUSE_FOR) instead of uploading
again. The file is read CHUNK bytes at a time: a 512 MB video never sits in memory.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from worker import media as post_media
from worker.publishers.base import (
    Account, NotReadyError, PermanentError, PostToPublish, RetryableError,
)
from worker.publishers.http import HttpClient, bearer, json_body

PLATFORM = "X"
CHUNK = 4 * 1024 * 1024       # X takes APPEND chunks of at most 5 MB
REUSE_FOR = timedelta(hours=20)  # X keeps an upload 24 h (expires_after_secs); a margin
NOT_READY_WAIT = timedelta(seconds=30)


class XMedia:
    def __init__(self, settings, http: HttpClient, error, sleep=time.sleep):
        self.settings, self.http, self.error, self.sleep = settings, http, error, sleep
        self.base = settings.x_api_base_url.rstrip("/")
        self.poll_interval = settings.instagram_poll_interval
        self.poll_attempts = settings.instagram_poll_attempts

    def upload_all(self, post: PostToPublish, account: Account) -> list[str]:
        """The media ids of the post's media, in order, uploading what is not uploaded yet."""
        return [self._one(post, item, account) for item in post.media]

    def _one(self, post: PostToPublish, item: post_media.MediaItem, account: Account) -> str:
        earlier = item.platform_media_id
        if earlier and item.uploaded_at and item.uploaded_at > datetime.now(timezone.utc) - REUSE_FOR:
            state = self._status(earlier, account)
            if state in (None, "succeeded"):
                return earlier
            if state in ("pending", "in_progress"):
                return self._wait(earlier, account)
        with post_media.opened(item, self.settings) as local:
            # A GIF goes up as tweet_gif (chunked), so an animated one stays animated.
            chunked = local.probe.is_video or local.mime_type == "image/gif"
            if local.mime_type not in ("image/jpeg", "image/png", "image/gif", "image/webp",
                                       "video/mp4", "video/quicktime"):
                raise PermanentError(f"X does not take {local.mime_type} media", error_code="media_type")
            media_id = (self._chunked(local, account) if chunked
                        else self._simple(local, account))
            post.remember_media(item.position, media_id)
            if item.alt_text:
                self._alt_text(media_id, item.alt_text, account)
            return self._wait(media_id, account) if chunked else media_id

    def _simple(self, local: post_media.LocalMedia, account: Account) -> str:
        with open(local.path, "rb") as file:
            response = self.http.send(
                PLATFORM, "POST", f"{self.base}/2/media/upload", headers=bearer(account.access_token),
                files={"media": ("media", file, local.mime_type)},
                data={"media_category": "tweet_image"})
        return self._id(response, account)

    def _chunked(self, local: post_media.LocalMedia, account: Account) -> str:
        category = "tweet_video" if local.probe.is_video else "tweet_gif"
        response = self.http.send(PLATFORM, "POST", f"{self.base}/2/media/upload/initialize",
                                  headers=bearer(account.access_token),
                                  json={"media_type": local.mime_type, "total_bytes": local.size,
                                        "media_category": category})
        media_id = self._id(response, account)
        with open(local.path, "rb") as file:
            index = 0
            while chunk := file.read(CHUNK):
                response = self.http.send(
                    PLATFORM, "POST", f"{self.base}/2/media/upload/{media_id}/append",
                    headers=bearer(account.access_token),
                    files={"media": ("chunk", chunk, "application/octet-stream")},
                    data={"segment_index": str(index)})
                del chunk
                if response.status_code not in (200, 201, 204):
                    raise self.error(response, account)
                index += 1
        response = self.http.send(PLATFORM, "POST", f"{self.base}/2/media/upload/{media_id}/finalize",
                                  headers=bearer(account.access_token))
        self._id(response, account)
        return media_id

    def _wait(self, media_id: str, account: Account) -> str:
        """Poll STATUS until X has processed the upload; NotReadyError (the post comes back
        later, the media id kept) when it takes longer than this attempt may wait."""
        for check in range(self.poll_attempts):
            state = self._status(media_id, account)
            if state in (None, "succeeded"):
                return media_id
            if state == "failed":
                raise PermanentError(f"X could not process media {media_id}: check the file "
                                     "(codec, size, duration)", error_code="media_failed")
            if check + 1 < self.poll_attempts:
                self.sleep(self.poll_interval)
        raise NotReadyError(f"X is still processing media {media_id}; the post will be tried "
                            "again shortly", retry_after=NOT_READY_WAIT, error_code="media_in_progress")

    def _status(self, media_id: str, account: Account) -> str | None:
        response = self.http.send(PLATFORM, "GET", f"{self.base}/2/media/upload",
                                  headers=bearer(account.access_token),
                                  params={"command": "STATUS", "media_id": media_id})
        if response.status_code != 200:
            raise self.error(response, account)
        info = (json_body(response).get("data") or {}).get("processing_info")
        return None if not info else str(info.get("state"))

    def _alt_text(self, media_id: str, text: str, account: Account) -> None:
        response = self.http.send(PLATFORM, "POST", f"{self.base}/2/media/metadata",
                                  headers=bearer(account.access_token),
                                  json={"id": media_id, "metadata": {"alt_text": {"text": text}}})
        if response.status_code not in (200, 201):
            raise self.error(response, account)

    def _id(self, response, account: Account) -> str:
        if response.status_code not in (200, 201, 202):
            raise self.error(response, account)
        media_id = (json_body(response).get("data") or {}).get("id")
        if not media_id:
            raise RetryableError("X accepted the upload but sent no media id back",
                                 error_code="no_media_id")
        return str(media_id)
