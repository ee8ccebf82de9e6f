"""The media store: thin views over app/services/media.py. The upload is read from the socket
as it arrives (a streaming multipart parser), so a 1 GB video never sits in memory and an
oversized one is refused at the first byte past the cap."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Iterator

from flask import Blueprint, current_app, request, send_file
from pydantic import Field
from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from app.api.body import HttpError
from app.api.schemas import CompanyQuery, Out
from app.api.spec import Api, sessions
from app.errors import InvalidInput, NotFound, TooLarge
from app.models import Media
from app.services import media as store
from app.timeutil import utcnow

api = Api("media", "media")
FIELD = "file"
UPLOAD = {"multipart/form-data": {"schema": {
    "type": "object", "required": [FIELD], "properties": {FIELD: {"type": "string", "format": "binary"}}}}}
_READ = 256 * 1024
_MULTIPART_SLACK = 64 * 1024  # headers and boundaries around the file in the body


class MediaOut(Out):
    id: str
    mimeType: str = Field(description="Read from the file's bytes, not its name")
    bytes: int
    sha256: str
    width: int | None
    height: int | None
    durationSeconds: float | None = Field(description="Videos only")
    filename: str | None
    createdAt: datetime

    @classmethod
    def of(cls, m: Media) -> "MediaOut":
        return cls(id=m.id, mimeType=m.mime_type, bytes=m.bytes, sha256=m.sha256, width=m.width,
                   height=m.height, durationSeconds=m.duration_seconds, filename=m.filename,
                   createdAt=m.created_at)


class MediaList(Out):
    items: list[MediaOut]


def _settings():
    return current_app.extensions["scheduler"]["settings"]


@api.route("POST", "/media", summary="Upload an image or a video (multipart field `file`)",
           response=MediaOut, status=201, upload=UPLOAD, upload_limit="SCHEDULER_MEDIA_MAX_BYTES")
def upload_media(company_id: str):
    settings = _settings()
    upload = _Upload(settings.media_max_bytes)
    media = store.store(sessions(), settings.media_dir, settings.media_max_bytes, company_id,
                        upload.chunks(), upload.filename, utcnow())
    return MediaOut.of(media)


@api.route("GET", "/media", summary="The company's stored media, newest first", response=MediaList,
           query=CompanyQuery)
def list_media(company_id: str, query: CompanyQuery):
    return MediaList(items=[MediaOut.of(m) for m in store.list_media(sessions(), company_id)])


@api.route("DELETE", "/media/<media_id>", summary="Delete stored media and its file",
           response=MediaOut, conflicts="A post that has not been published yet uses this media")
def delete_media(company_id: str, media_id: str):
    return MediaOut.of(store.delete_media(sessions(), _settings().media_dir, company_id, media_id))


def serve_signed(media_id: str):
    """GET /media/<id>/content?expires=&signature=: the file, for a platform pulling it by URL
    (no API key: the signature is the permission, and it expires)."""
    settings = _settings()
    if not store.check_signature(store.signing_key(settings), media_id,
                                 request.args.get("expires", ""),
                                 request.args.get("signature", ""), time.time()):
        raise NotFound("no such media URL, or it has expired")
    with sessions()() as session:
        media = session.get(Media, media_id)
    if media is None:
        raise NotFound("no such media URL, or it has expired")
    return send_file(store.path_of(settings.media_dir, media), mimetype=media.mime_type,
                     conditional=True, etag=media.sha256)


# Not part of the JSON API (no key, the file's own type): a blueprint of its own.
files = Blueprint("media_files", __name__)
files.add_url_rule("/media/<media_id>/content", "serve_signed", serve_signed, methods=["GET"])


class _Upload:
    """The `file` part of a multipart/form-data body, read from the socket chunk by chunk."""

    def __init__(self, max_bytes: int):
        boundary = request.mimetype_params.get("boundary")
        if request.mimetype != "multipart/form-data" or not boundary:
            raise HttpError(415, "unsupported_media_type",
                            f"send the file as multipart/form-data in the field `{FIELD}`")
        length = request.content_length
        if length is not None and length > max_bytes + _MULTIPART_SLACK:
            raise TooLarge(f"the file is larger than {max_bytes} bytes "
                                 "(SCHEDULER_MEDIA_MAX_BYTES): send a smaller one")
        if length is None and not request.environ.get("wsgi.input_terminated"):
            raise HttpError(411, "length_required", "send a Content-Length")
        self._stream, self._left = request.environ["wsgi.input"], length
        self._decoder = MultipartDecoder(boundary.encode(), max_form_memory_size=_READ + _MULTIPART_SLACK,
                                         max_parts=16)
        self.filename: str | None = None
        self._events = self._read_events()
        self._first = self._find_file()

    def _read_events(self) -> Iterator:
        while True:
            event = self._decoder.next_event()
            if isinstance(event, NeedData):
                self._decoder.receive_data(self._read())
                continue
            yield event
            if isinstance(event, Epilogue):
                return

    def _read(self) -> bytes | None:
        size = _READ if self._left is None else min(_READ, self._left)
        data = self._stream.read(size) if size else b""
        if self._left is not None:
            self._left -= len(data)
        return data or None  # None: the end of the body

    def _find_file(self) -> Data | None:
        try:
            for event in self._events:
                if isinstance(event, File) and event.name == FIELD:
                    self.filename = event.filename
                    return None
        except ValueError as exc:
            raise HttpError(400, "bad_request", f"the multipart body is malformed: {exc}") from None
        raise InvalidInput(f"send the file in the multipart field `{FIELD}`",
                           fields={FIELD: "required"})

    def chunks(self) -> Iterator[bytes]:
        try:
            for event in self._events:
                if not isinstance(event, Data):
                    break
                if event.data:
                    yield event.data
                if not event.more_data:
                    return
        except ValueError as exc:
            raise HttpError(400, "bad_request", f"the multipart body is malformed: {exc}") from None
