"""LinkedIn media: images through the Images API (initializeUpload, PUT of the file to the
uploadUrl) and a video through the Videos API (initializeUpload, a PUT per part as the
uploadInstructions say, each answer's ETag, finalizeUpload, then the video's status until
AVAILABLE). The post then names them in `content.media` (one) or `content.multiImage` (2-20).

Each upload's URN is remembered on the post at once, so a retry reuses it. Parts are read one
at a time from the file, so a large video never sits in memory.
"""
from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import quote

from worker import media as post_media
from worker.publishers.base import (
    Account, NotReadyError, PermanentError, PostToPublish, RetryableError,
)
from worker.publishers.http import HttpClient, json_body

PLATFORM = "LinkedIn"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif")
NOT_READY_WAIT = timedelta(seconds=30)


class LinkedInMedia:
    def __init__(self, settings, http: HttpClient, headers, error, sleep=time.sleep):
        self.settings, self.http, self.headers, self.error = settings, http, headers, error
        self.base = settings.linkedin_api_base_url.rstrip("/")
        self.poll_interval = settings.instagram_poll_interval
        self.poll_attempts = settings.instagram_poll_attempts
        self.sleep = sleep

    def content(self, post: PostToPublish, account: Account) -> dict | None:
        """The post's `content` naming its uploaded media, or None without media."""
        if not post.media:
            return None
        items = [{"id": self._one(post, item, account), **_alt(item)} for item in post.media]
        if len(items) == 1:
            return {"media": items[0]}
        return {"multiImage": {"images": items}}

    def _one(self, post: PostToPublish, item: post_media.MediaItem, account: Account) -> str:
        if item.platform_media_id:  # an earlier attempt's upload: LinkedIn keeps it
            if item.platform_media_id.startswith("urn:li:video:"):
                self._wait(item.platform_media_id, account)
            return item.platform_media_id
        with post_media.opened(item, self.settings) as local:
            if local.probe.is_video:
                if len(post.media) > 1:
                    raise PermanentError("LinkedIn takes a video only as a post's single media item",
                                         error_code="media_mix")
                urn = self._video(local, account)
            elif local.mime_type in IMAGE_TYPES:
                urn = self._image(local, account)
            else:
                raise PermanentError(f"LinkedIn does not take {local.mime_type} images",
                                     error_code="media_type")
        post.remember_media(item.position, urn)
        if urn.startswith("urn:li:video:"):
            self._wait(urn, account)
        return urn

    def _image(self, local: post_media.LocalMedia, account: Account) -> str:
        value = self._initialize("images", {"owner": account.external_id}, account)
        with open(local.path, "rb") as file:
            self._put(value["uploadUrl"], file, account)
        return value["image"]

    def _video(self, local: post_media.LocalMedia, account: Account) -> str:
        value = self._initialize("videos", {
            "owner": account.external_id, "fileSizeBytes": local.size, "uploadCaptions": False,
            "uploadThumbnail": False}, account)
        etags = []
        with open(local.path, "rb") as file:
            for part in value.get("uploadInstructions") or []:
                file.seek(part["firstByte"])
                chunk = file.read(part["lastByte"] - part["firstByte"] + 1)
                etags.append(self._put(part["uploadUrl"], chunk, account))
                del chunk
        response = self.http.send(
            PLATFORM, "POST", f"{self.base}/rest/videos", params={"action": "finalizeUpload"},
            headers=self.headers(account), json={"finalizeUploadRequest": {
                "video": value["video"], "uploadToken": value.get("uploadToken", ""),
                "uploadedPartIds": etags}})
        if response.status_code not in (200, 201, 204):
            raise self.error(response, account)
        return value["video"]

    def _initialize(self, kind: str, request: dict, account: Account) -> dict:
        response = self.http.send(PLATFORM, "POST", f"{self.base}/rest/{kind}",
                                  params={"action": "initializeUpload"},
                                  headers=self.headers(account),
                                  json={"initializeUploadRequest": request})
        if response.status_code not in (200, 201):
            raise self.error(response, account)
        value = json_body(response).get("value") or {}
        if not (value.get("uploadUrl") or value.get("uploadInstructions")):
            raise RetryableError(f"LinkedIn answered initializeUpload for {kind} without an "
                                 "upload URL", error_code="no_upload_url")
        return value

    def _put(self, url: str, data, account: Account) -> str:
        response = self.http.send(PLATFORM, "PUT", url, data=data,
                                  headers={"Authorization": f"Bearer {account.access_token}",
                                           "Content-Type": "application/octet-stream"})
        if response.status_code not in (200, 201):
            raise self.error(response, account)
        return response.headers.get("ETag", "")

    def _wait(self, urn: str, account: Account) -> None:
        for check in range(self.poll_attempts):
            response = self.http.send(PLATFORM, "GET", f"{self.base}/rest/videos/{quote(urn)}",
                                      headers=self.headers(account))
            if response.status_code != 200:
                raise self.error(response, account)
            status = json_body(response).get("status")
            if status == "AVAILABLE":
                return
            if status == "PROCESSING_FAILED":
                raise PermanentError(f"LinkedIn could not process video {urn}: check the file",
                                     error_code="media_failed")
            if check + 1 < self.poll_attempts:
                self.sleep(self.poll_interval)
        raise NotReadyError(f"LinkedIn is still processing video {urn}; the post will be tried "
                            "again shortly", retry_after=NOT_READY_WAIT, error_code="media_in_progress")


def _alt(item: post_media.MediaItem) -> dict:
    return {"altText": item.alt_text} if item.alt_text else {}
