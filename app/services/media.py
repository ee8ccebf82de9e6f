"""The media store: files a company uploads once (POST /media), streamed to SCHEDULER_MEDIA_DIR
with their SHA-256, checked for what they are by app/mediafile; listed, deleted (not while a
pending post uses them), and served to platforms that pull by URL at signed, expiring URLs.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, InvalidInput, NotFound, TooLarge
from app.mediafile import probe
from app.models import Media, PostDetail, PostMedia
from app.statuses import QueueStatus
from app.models import PostSchedule

# A post still waiting to go out needs its files; a published, failed or cancelled one does not.
_WAITING = (QueueStatus.PENDING, QueueStatus.PROCESSING, QueueStatus.WAITING)


@dataclass(frozen=True)
class MediaRef:
    """One item of a post's media as a request names it: stored media or a URL, with alt text."""

    media_id: str | None = None
    url: str | None = None
    alt_text: str | None = None


# -- the store --------------------------------------------------------------------------------

def path_of(media_dir: str, media: Media) -> Path:
    return Path(media_dir) / media.storage_key


def store(sessions: sessionmaker[Session], media_dir: str, max_bytes: int, company_id: str,
          chunks: Iterable[bytes], filename: str | None, now: datetime) -> Media:
    """Write `chunks` (the upload as it arrives) to a temporary file, hashing as it goes and
    stopping at the first byte past `max_bytes`; then read what it is, move it into place and
    record it. Nothing is kept of a refused upload."""
    media_id = str(uuid.uuid4())
    key = f"{company_id}/{media_id}"
    target = Path(media_dir) / key
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "w+b") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the file is larger than {max_bytes} bytes "
                                   "(SCHEDULER_MEDIA_MAX_BYTES): send a smaller one")
                digest.update(chunk)
                out.write(chunk)
            if size == 0:
                raise InvalidInput("file is empty", fields={"file": "is empty"})
            found = probe(out)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    media = Media(id=media_id, company_id=company_id, mime_type=found.mime_type, bytes=size,
                  sha256=digest.hexdigest(), width=found.width, height=found.height,
                  duration_seconds=found.duration_seconds,
                  filename=(filename or None) and filename[-255:], storage_key=key, created_at=now)
    try:
        with sessions.begin() as session:
            session.add(media)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return media


def list_media(sessions: sessionmaker[Session], company_id: str, limit: int = 100) -> list[Media]:
    with sessions() as session:
        return list(session.scalars(select(Media).where(Media.company_id == company_id)
                                    .order_by(Media.created_at.desc(), Media.id).limit(limit)))


def get_media(session: Session, company_id: str, media_id: str) -> Media:
    media = session.get(Media, media_id) if _is_uuid(media_id) else None
    if media is None or media.company_id != company_id:
        raise NotFound(f"no media {media_id} in this company")  # another company's: the same answer
    return media


def delete_media(sessions: sessionmaker[Session], media_dir: str, company_id: str,
                 media_id: str) -> Media:
    """Delete stored media and its file; refused while a post waiting to go out uses it."""
    with sessions.begin() as session:
        media = get_media(session, company_id, media_id)
        waiting = session.scalar(
            select(PostMedia.post_detail_id).join(
                PostSchedule, PostSchedule.post_detail_id == PostMedia.post_detail_id)
            .where(PostMedia.media_id == media.id, PostSchedule.status.in_(_WAITING)).limit(1))
        if waiting is not None:
            raise Conflict(f"media {media_id} is used by post {waiting}, which has not been "
                           "published yet: cancel or edit that post first")
        session.delete(media)
        path = path_of(media_dir, media)
    path.unlink(missing_ok=True)
    for thumb in (Path(media_dir) / ".thumbs").glob(f"{media.id}-*.png"):
        thumb.unlink(missing_ok=True)
    return media


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def thumbnail(media_dir: str, media: Media, size: int = 160) -> Path | None:
    """A PNG at most `size` pixels wide and high of stored image media, made once and kept
    beside the files (`.thumbs/`); None for a video (no frame decoder is shipped)."""
    if not media.mime_type.startswith("image/"):
        return None
    target = Path(media_dir) / ".thumbs" / f"{media.id}-{size}.png"
    if not target.exists():
        from PIL import Image

        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path_of(media_dir, media)) as image:
            image.thumbnail((size, size))
            temp = target.with_suffix(".tmp")
            image.convert("RGBA").save(temp, "PNG")
        os.replace(temp, target)
    return target


# -- a post's media ---------------------------------------------------------------------------

def resolve_refs(session: Session, company_id: str, refs: list[MediaRef]) -> list[Media | None]:
    """The stored media each ref names (None for a URL); a media id of another company, or of
    none, is 404 naming it."""
    ids = [r.media_id for r in refs if r.media_id]
    found = {m.id: m for m in session.scalars(select(Media).where(
        Media.id.in_(ids), Media.company_id == company_id))} if ids else {}
    for media_id in ids:
        if media_id not in found:
            raise NotFound(f"no media {media_id} in this company (POST /media uploads one)")
    return [found[r.media_id] if r.media_id else None for r in refs]


def post_media_rows(post_id: str, refs: list[MediaRef]) -> list[dict]:
    """The post_media rows of one post, in the order given."""
    return [dict(post_detail_id=post_id, position=i, media_id=r.media_id, url=r.url,
                 alt_text=r.alt_text) for i, r in enumerate(refs)]


def refs_of(session: Session, post: PostDetail) -> list[MediaRef]:
    rows = session.scalars(select(PostMedia).where(PostMedia.post_detail_id == post.id)
                           .order_by(PostMedia.position))
    return [MediaRef(r.media_id, r.url, r.alt_text) for r in rows]


# -- signed URLs for platforms that pull by URL -----------------------------------------------

def signing_key(settings) -> bytes:
    """The key of media URLs' signatures, derived from (never equal to) the token key."""
    from app import crypto

    base = settings.secret_key.encode() if settings.secret_key else crypto.development_key()
    return hmac.new(base, b"post-scheduler media urls", hashlib.sha256).digest()


def sign(secret: bytes, media_id: str, expires: int) -> str:
    return hmac.new(secret, f"media:{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(public_url: str, secret: bytes, media_id: str, expires: int) -> str:
    """Where a platform can GET the file until `expires` (Unix seconds), without an API key."""
    return (f"{public_url.rstrip('/')}/media/{media_id}/content?expires={expires}"
            f"&signature={sign(secret, media_id, expires)}")


def check_signature(secret: bytes, media_id: str, expires: str, signature: str, now: float) -> bool:
    if not expires.isdigit() or int(expires) < now:
        return False
    return hmac.compare_digest(sign(secret, media_id, int(expires)), signature)
