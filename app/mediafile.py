"""What a media file is, read from its bytes (never from its name or a Content-Type): the type
from the leading bytes, an image's size from Pillow, a video's duration, size and whether it
has a video track from its MP4/QuickTime boxes. Files are read by seeking, never whole."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from app.errors import InvalidInput

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
VIDEO_TYPES = ("video/mp4", "video/quicktime")
TYPES = IMAGE_TYPES + VIDEO_TYPES
_PILLOW_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta"}


@dataclass(frozen=True)
class Probe:
    mime_type: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None

    @property
    def is_video(self) -> bool:
        return self.mime_type in VIDEO_TYPES


def sniff(head: bytes) -> str | None:
    """The media type the first bytes say, or None for anything this scheduler does not take."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    return None


def probe(stream: BinaryIO, field: str = "file") -> Probe:
    """What `stream` (a seekable file) holds; InvalidInput naming `field` when it is not a
    media file this scheduler takes, or is damaged."""
    stream.seek(0)
    mime = sniff(stream.read(16))
    if mime is None:
        raise _bad(field, "is not a JPEG, PNG, GIF, WebP, MP4 or QuickTime file (its first bytes "
                          "say so, whatever its name or type claims)")
    stream.seek(0)
    return _image(stream, mime, field) if mime in IMAGE_TYPES else _video(stream, mime, field)


def _bad(field: str, why: str) -> InvalidInput:
    return InvalidInput(f"{field} {why}", fields={field: why})


def _image(stream: BinaryIO, mime: str, field: str) -> Probe:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(stream) as image:
            width, height = image.size
            fmt = image.format
            image.load()  # decodes the first frame: a truncated or corrupt file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise _bad(field, f"is a damaged or unreadable {mime.split('/')[1].upper()} image") from None
    if _PILLOW_FORMATS.get(fmt or "") != mime:
        raise _bad(field, f"starts like {mime} but Pillow reads it as {fmt}")
    return Probe(mime, width, height)


def _video(stream: BinaryIO, mime: str, field: str) -> Probe:
    end = stream.seek(0, 2)
    found: dict = {"tracks": []}
    try:
        _walk(stream, 0, end, found)
    except (struct.error, ValueError):
        raise _bad(field, "is a damaged MP4/QuickTime file (its boxes do not add up)") from None
    if "duration" not in found:
        raise _bad(field, "is an MP4/QuickTime file without a movie header (moov/mvhd): damaged "
                          "or not finished")
    video = [t for t in found["tracks"] if t.get("handler") == b"vide"]
    if not video:
        raise _bad(field, "has no video track (audio only or empty): upload a video")
    width, height = video[0].get("size", (None, None))
    return Probe(mime, width, height, round(found["duration"], 3))


def _walk(stream: BinaryIO, start: int, end: int, found: dict) -> None:
    """Read the boxes between `start` and `end`, descending into containers; only the headers
    and the few small boxes needed are read."""
    at = start
    while at + 8 <= end:
        stream.seek(at)
        size, kind = struct.unpack(">I4s", stream.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", stream.read(8))[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError(f"box {kind!r} at {at} overruns its parent")
        body = at + header
        if kind == b"trak":
            found["tracks"].append({})
        if kind in _CONTAINERS:
            _walk(stream, body, at + size, found)
        elif kind == b"mvhd":
            found["duration"] = _mvhd(stream.read(min(size - header, 32)))
        elif kind == b"tkhd" and found["tracks"]:
            found["tracks"][-1]["size"] = _tkhd(stream.read(min(size - header, 96)))
        elif kind == b"hdlr" and found["tracks"]:
            found["tracks"][-1]["handler"] = stream.read(12)[8:12]
        at += size


def _mvhd(data: bytes) -> float:
    version = data[0]
    if version == 1:
        timescale, duration = struct.unpack(">IQ", data[20:32])
    else:
        timescale, duration = struct.unpack(">II", data[12:20])
    if timescale == 0:
        raise ValueError("mvhd timescale 0")
    return duration / timescale


def _tkhd(data: bytes) -> tuple[int, int]:
    at = 88 if data[0] == 1 else 76  # version 1 has 64-bit times
    width, height = struct.unpack(">II", data[at:at + 8])
    return width >> 16, height >> 16  # 16.16 fixed point
