"""A post's media as publishers use it: `load(...)` reads the items of claimed posts (stored
media or URLs, in order, with alt text and any upload an earlier attempt made), and
`opened(item, settings)` gives one as a local file, fetching a URL safely first.

    for item in post.media:
        with opened(item, settings) as local:      # local.path, local.probe, local.size
            ...upload local.path in chunks, pass item.alt_text...
            post.remember_media(item.position, platform_media_id)

Platforms that pull by URL use `public_url(item, settings)` instead: a signed, expiring URL of
stored media (SCHEDULER_PUBLIC_URL), or the user's own URL.
"""
from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Iterator

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import safeurl
from app.errors import InvalidInput
from app.mediafile import Probe, probe
from app.models import Media, PostMedia
from app.services.media import signed_url, signing_key
from worker.publishers.base import PermanentError, RetryableError


@dataclass(frozen=True)
class MediaItem:
    position: int
    alt_text: str | None = None
    url: str | None = None          # fetched by the worker at publish time
    media_id: str | None = None     # stored media: what is known of it came from its bytes
    path: Path | None = None
    mime_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    # What the platform called an upload of this item by an earlier attempt, and when.
    platform_media_id: str | None = None
    uploaded_at: datetime | None = None


@dataclass(frozen=True)
class LocalMedia:
    item: MediaItem
    path: Path
    probe: Probe
    size: int

    @property
    def mime_type(self) -> str:
        return self.probe.mime_type


def load(sessions: sessionmaker[Session], media_dir: str,
         post_ids: list[str]) -> dict[str, list[MediaItem]]:
    """The media of each post (posts without any are absent), in order: one read."""
    if not post_ids:
        return {}
    out: dict[str, list[MediaItem]] = {}
    with sessions() as session:
        rows = session.execute(
            select(PostMedia, Media).outerjoin(Media, Media.id == PostMedia.media_id)
            .where(PostMedia.post_detail_id.in_(post_ids))
            .order_by(PostMedia.post_detail_id, PostMedia.position)).all()
    for link, media in rows:
        item = MediaItem(link.position, link.alt_text, link.url,
                         platform_media_id=link.platform_media_id, uploaded_at=link.uploaded_at)
        if media is not None:
            item = replace(item, media_id=media.id, path=Path(media_dir) / media.storage_key,
                           mime_type=media.mime_type, bytes=media.bytes, width=media.width,
                           height=media.height, duration_seconds=media.duration_seconds)
        out.setdefault(link.post_detail_id, []).append(item)
    return out


def from_urls(urls: list[str]) -> list[MediaItem]:
    """The items of a post made before post_media existed: its URLs, no alt text."""
    return [MediaItem(i, url=url) for i, url in enumerate(urls)]


def remember(sessions: sessionmaker[Session], post_id: str, position: int,
             platform_media_id: str | None, now: datetime) -> None:
    """Keep the platform's id of an upload at once, so a retry after a crash reuses it."""
    with sessions.begin() as session:
        session.execute(update(PostMedia).where(PostMedia.post_detail_id == post_id,
                                                PostMedia.position == position)
                        .values(platform_media_id=platform_media_id,
                                uploaded_at=now if platform_media_id else None))


@contextmanager
def opened(item: MediaItem, settings) -> Iterator[LocalMedia]:
    """`item` as a file on disk: stored media where it is, a URL fetched (streamed, capped,
    private addresses refused) into a temporary file that is removed afterwards. A URL that
    cannot be fetched now is RetryableError, one that may never be fetched PermanentError; both
    name the URL."""
    if item.path is not None:
        if not item.path.exists():
            raise PermanentError(f"stored media {item.media_id} has no file any more "
                                 f"(under SCHEDULER_MEDIA_DIR): upload it again",
                                 error_code="media_missing")
        yield LocalMedia(item, item.path, Probe(item.mime_type or "", item.width, item.height,
                                                item.duration_seconds), item.bytes or 0)
        return
    if item.url is None:  # stored media whose row is gone (deleted after the post was made)
        raise PermanentError(f"media item {item.position + 1} of the post was deleted: edit the "
                             "post's media", error_code="media_missing")
    url = item.url
    folder = Path(settings.media_dir) / ".fetch"
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder)
    try:
        with os.fdopen(handle, "w+b") as out:
            size = _fetch(url, out, settings)
            try:
                found = probe(out, field=f"media URL {url}")
            except InvalidInput as exc:
                raise PermanentError(str(exc), error_code="media_invalid") from None
        yield LocalMedia(item, Path(name), found, size)
    finally:
        Path(name).unlink(missing_ok=True)


def _fetch(url: str, out, settings) -> int:
    try:
        return safeurl.fetch(url, out, max_bytes=settings.media_max_bytes,
                             timeout=settings.media_fetch_timeout,
                             allow_private=bool(settings.media_allow_private))
    except safeurl.FetchRefused as exc:
        raise PermanentError(str(exc), error_code="media_refused") from None
    except safeurl.FetchFailed as exc:
        raise RetryableError(str(exc), error_code="media_fetch") from None


def public_url(item: MediaItem, settings, ttl: int | None = None) -> str:
    """A URL a platform can pull the item from: the user's own, or a signed one of stored media
    valid for SCHEDULER_MEDIA_URL_TTL seconds."""
    if item.url is not None:
        return item.url
    if not settings.public_url:
        raise PermanentError("SCHEDULER_PUBLIC_URL is not set, so the platform cannot be given a "
                             "URL of stored media: set it to this API's public address",
                             error_code="no_public_url")
    expires = int(time.time()) + (ttl or settings.media_url_ttl)
    return signed_url(settings.public_url, signing_key(settings), str(item.media_id), expires)
