"""What each platform accepts: content length (counted each platform's way), media, and URL rules.

Checked when a post is scheduled or edited, so a post the platform would refuse is refused
at once with the reason, not three attempts later at publish time.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Sequence, cast
from urllib.parse import urlsplit

import regex

from app.statuses import Platform

MAX_MEDIA = 20  # items per post, whatever the platform (LinkedIn's multiImage is the largest)
MAX_URL_LENGTH = 2048
MAX_PARTS = 24  # replies after the post: a thread of 25, as X's composer allows
VIDEO_URL = re.compile(r"\.(mp4|mov|m4v|avi|wmv|webm)(\?|#|$)", re.IGNORECASE)


def is_video_url(url: str) -> bool:
    """A media URL counts as a video by its extension (what the platforms fetch is not read)."""
    return bool(VIDEO_URL.search(url))
MAX_ALT_TEXT = 1000  # X's alt text limit, the smallest of the platforms that take one
MB = 1024 * 1024
IMAGES = ("image/jpeg", "image/png", "image/gif", "image/webp")
VIDEOS = ("video/mp4", "video/quicktime")


@dataclass(frozen=True)
class MediaRules:
    """What a platform takes in one post, as its documentation states it."""

    max_images: int
    max_videos: int = 1
    image_types: tuple[str, ...] = IMAGES
    video_types: tuple[str, ...] = VIDEOS
    max_image_bytes: int | None = None
    max_gif_bytes: int | None = None
    max_video_bytes: int | None = None
    video_seconds: tuple[float, float] | None = None  # shortest, longest
    aspect: tuple[float, float] | None = None          # width / height: narrowest, widest (video)
    image_aspect: tuple[float, float] | None = None
    mixed: bool = False                                # images and a video in one post
    gif_alone: bool = False                            # an (animated) GIF is a post's only media
    stored: bool = True  # its publisher takes stored media (mediaIds), not only URLs


@dataclass(frozen=True)
class Limits:
    name: str
    max_length: int         # of the post, and of each part of a thread
    needs_media: bool = False
    counting: str = "characters"  # how the platform counts: a key of COUNTERS
    max_media: int = MAX_MEDIA  # items in one post, whatever their kind
    threads: bool = False   # takes `parts` (its publisher has `reply`)
    video_alone: bool = False  # a video (a URL by its extension) must be the post's only medium
    comment_length: int | None = None  # a first comment's limit; None: no first comment
    max_bytes: int | None = None  # a limit on the text's UTF-8 bytes besides (Bluesky)
    media: MediaRules = field(default_factory=lambda: MediaRules(max_images=MAX_MEDIA))


# Platforms whose publishers take only media URLs for now: their items are counted.
_BY_URL = MediaRules(max_images=MAX_MEDIA, max_videos=MAX_MEDIA, mixed=True, stored=False)

LIMITS = {
    # docs.x.com media best practices: 4 images (5 MB; GIF 15 MB) or 1 video/GIF; video MP4/MOV
    # up to 512 MB, 0.5-140 s, aspect ratio 1:3 to 3:1.
    Platform.X: Limits("X", 280, counting="weighted", max_media=4, threads=True,
                       comment_length=280, media=MediaRules(
        max_images=4, max_image_bytes=5 * MB, max_gif_bytes=15 * MB, max_video_bytes=512 * MB,
        video_seconds=(0.5, 140), aspect=(1 / 3, 3), gif_alone=True)),
    # LinkedIn Images API: JPEG/PNG/GIF, 1 image or a multiImage of 2-20; Videos API: MP4,
    # 75 KB-500 MB, 3 s-30 min; no images beside a video.
    Platform.LINKEDIN: Limits("LinkedIn", 3000, max_media=20, comment_length=1250, media=MediaRules(
        max_images=20, image_types=("image/jpeg", "image/png", "image/gif"),
        video_types=("video/mp4",), max_video_bytes=500 * MB, video_seconds=(3, 30 * 60))),
    # Graph API: up to 10 photos in one post (attached_media), or one video.
    Platform.FACEBOOK: Limits("Facebook", 63206, max_media=10, comment_length=8000,
                              video_alone=True, media=MediaRules(
        max_images=10, image_types=("image/jpeg", "image/png", "image/gif", "image/webp"))),
    # Content Publishing API: JPEG images (aspect 4:5 to 1.91:1), Reels MP4/MOV 3 s-15 min;
    # one image or video, or a carousel of 2-10 (images and videos mixed).
    Platform.INSTAGRAM: Limits("Instagram", 2200, needs_media=True, max_media=10,
                               comment_length=2200, media=MediaRules(
        max_images=10, max_videos=10, image_types=("image/jpeg",), video_seconds=(3, 15 * 60),
        max_image_bytes=8 * MB, max_video_bytes=300 * MB, image_aspect=(4 / 5, 1.91),
        mixed=True)),
    Platform.SANDBOX: Limits("the sandbox", 63206, threads=True, comment_length=63206,
                             media=MediaRules(max_images=MAX_MEDIA, max_videos=MAX_MEDIA, mixed=True)),
    # Their publishers reply (worker/parts.py): threads, and the first comment as a reply.
    # app.bsky.feed.post's text: maxGraphemes 300 and maxLength 3000 (UTF-8 bytes);
    # app.bsky.embed.images: at most 4 images (JPEG/PNG/WebP) of at most 1,000,000 bytes each.
    Platform.BLUESKY: Limits("Bluesky", 300, counting="graphemes", max_media=4, max_bytes=3000,
                             threads=True, comment_length=300, media=MediaRules(
        max_images=4, max_videos=0, image_types=("image/jpeg", "image/png", "image/webp"),
        video_types=(), max_image_bytes=1_000_000)),
    # An instance may allow more (its /api/v2/instance): the account's own limit, read at
    # connect, replaces these two (see check_post).
    # Mastodon 4.x defaults: 4 images (16 MB) or 1 video (99 MB); JPEG/PNG/GIF/WebP, MP4/MOV/WebM.
    Platform.MASTODON: Limits("Mastodon", 500, counting="mastodon", max_media=4, threads=True,
                              comment_length=500, media=MediaRules(
        max_images=4, max_image_bytes=16 * MB, max_video_bytes=99 * MB,
        video_types=("video/mp4", "video/quicktime", "video/webm"))),
    # Threads API: JPEG/PNG images (8 MB), MP4/MOV videos (1 GB, at most 5 min); one, or a
    # carousel of 2-20 mixed; every medium by URL (stored media by a signed one).
    Platform.THREADS: Limits("Threads", 500, counting="threads", max_media=20, threads=True,
                             comment_length=500, media=MediaRules(
        max_images=20, max_videos=20, mixed=True, image_types=("image/jpeg", "image/png"),
        max_image_bytes=8 * MB, max_video_bytes=1024 * MB, video_seconds=(0, 300))),
}

# twitter-text v3: these code point ranges weigh 1, everything else 2 (out of 280);
# every URL weighs 23 whatever its length; an emoji sequence weighs 2.
_LIGHT = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_URL = re.compile(r"https?://[^\s]+|(?<![\w@.])(?:[a-z0-9-]+\.)+(?:com|org|net|io|co|dev|app|ly)"
                  r"(?:/[^\s]*)?", re.IGNORECASE)
_URL_WEIGHT = 23
# An emoji and what joins onto it: ZWJ, variation selectors, skin tones, keycaps, tags.
_EMOJI = re.compile(
    "(?:[\U0001F1E6-\U0001F1FF]{2}"  # a flag: two regional indicators
    "|[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u2190-\u21FF\u2300-\u23FF])"
    "(?:[\uFE0E\uFE0F\u20E3\U0001F3FB-\U0001F3FF\U000E0020-\U000E007F]"
    "|\u200D[\U0001F000-\U0001FAFF\u2600-\u27BF\u2640\u2642\u2695\u2708\u2764])*")


def weighted_length(text: str) -> int:
    """X's length of `text` (twitter-text v3 rules, NFC-normalized as X does)."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    for part, is_url in _split(text, _URL):
        if is_url:
            total += _URL_WEIGHT
            continue
        for piece, is_emoji in _split(part, _EMOJI):
            total += 2 if is_emoji else sum(_char_weight(c) for c in piece)
    return total


def grapheme_length(text: str) -> int:
    """User-perceived characters (extended grapheme clusters, Unicode's \\X): an emoji with its
    skin tone or ZWJ sequence, or a letter with its combining marks, is one (Bluesky)."""
    return len(_GRAPHEME.findall(text))


_GRAPHEME = regex.compile(r"\X")
# Mastodon: a URL counts 23 whatever its length, a remote mention only its @user part.
_MASTODON_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_REMOTE_MENTION = re.compile(r"(@\w+)@[\w.-]+\w")


def mastodon_length(text: str) -> int:
    """Mastodon's count (StatusLengthValidator): graphemes, every URL 23, `@user@domain` as
    `@user`."""
    text = _MASTODON_URL.sub("x" * _URL_WEIGHT, text)
    return grapheme_length(_REMOTE_MENTION.sub(r"\1", text))


def threads_length(text: str) -> int:
    """Threads' count: characters, but an emoji counts its UTF-8 bytes (Threads' docs)."""
    return sum(len(piece.encode()) if is_emoji else len(piece)
               for piece, is_emoji in _split(text, _EMOJI))


COUNTERS = {"characters": len, "weighted": weighted_length, "graphemes": grapheme_length,
            "mastodon": mastodon_length, "threads": threads_length}
UNITS = {"weighted": " (weighted: URLs count 23, CJK and emoji 2)",
         "graphemes": " (graphemes: an emoji or accented letter counts 1)",
         "mastodon": " (URLs count 23)", "threads": " (an emoji counts its UTF-8 bytes)"}


def _split(text: str, pattern: re.Pattern):
    at = 0
    for match in pattern.finditer(text):
        if match.start() > at:
            yield text[at:match.start()], False
        yield match.group(), True
        at = match.end()
    if at < len(text):
        yield text[at:], False


def _char_weight(char: str) -> int:
    point = ord(char)
    return 1 if any(lo <= point <= hi for lo, hi in _LIGHT) else 2


@dataclass(frozen=True)
class MediaInfo:
    """One item of a post as the limits see it: `field` names it in the request; what it is is
    known for stored media (read from its bytes) and unknown (None) for a URL until publish."""

    field: str
    mime_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    alt_text: str | None = None


def limits_for(platform: str, account_meta: dict | None = None) -> Limits:
    """The platform's limits, with what the account's own server told at connect (a Mastodon
    instance's `max_characters` and `max_media_attachments`, kept in auth_meta)."""
    limits = LIMITS[cast(Platform, platform)]  # a StrEnum member is found by its string
    meta = account_meta or {}
    length, media = meta.get("max_characters"), meta.get("max_media_attachments")
    if isinstance(length, int) and length > 0:
        limits = replace(limits, max_length=length)
    if isinstance(media, int) and media >= 0:
        limits = replace(limits, max_media=min(media, MAX_MEDIA))
    return limits


def length_for(platform: str, content: str, account_meta: dict | None = None) -> int:
    """`content`'s length as `platform` counts it (COUNTERS): the number check_post compares and
    the composer's counter shows (POST /limits/check), so the two cannot disagree."""
    return COUNTERS[limits_for(platform, account_meta).counting](content)


def check_post(platform: str, content: str, media_urls: list[str],
               account_meta: dict | None = None, media: list[MediaInfo] | None = None,
               parts: Sequence[str] = (), first_comment: str | None = None) -> dict[str, str]:
    """What is wrong with this post for `platform`, by request field; empty when it is fine.
    `media` (when given) describes every item; else `media_urls` are counted. Each part of a
    thread and the first comment are checked as the content is; the account's own limits
    (`account_meta`, see limits_for) replace the platform's."""
    limits = limits_for(platform, account_meta)
    problems: dict[str, str] = {}
    texts: list[tuple[str, str, int]] = [("content", content, limits.max_length)]
    if parts and not limits.threads:
        problems["parts"] = (f"{limits.name} has no threads: schedule the parts as separate "
                             "posts, or join them into one")
    else:
        texts += [(f"parts[{i}]", text, limits.max_length) for i, text in enumerate(parts)]
    if first_comment is not None and limits.comment_length is None:
        problems["firstComment"] = f"{limits.name} takes no first comment"
    elif first_comment is not None and limits.comment_length is not None:
        texts.append(("firstComment", first_comment, limits.comment_length))
    for field, text, most in texts:
        why = _too_long(limits, text, most)
        if why:
            problems[field] = why
    media = media if media is not None else [MediaInfo(f"mediaUrls[{i}]")
                                             for i in range(len(media_urls))]
    if limits.needs_media and not media:
        problems["mediaUrls"] = f"{limits.name} needs at least one image or video (mediaIds or mediaUrls)"
    elif len(media) > limits.max_media:
        problems[_list_field(media)] = (f"{limits.name} takes at most {limits.max_media} images "
                                        "or videos")
    else:
        problems.update(check_media(limits, media))
    if limits.video_alone and len(media) > 1 and any(map(is_video_url, media_urls)):
        problems["mediaUrls"] = (f"{limits.name} takes one video alone, or photos only: split "
                                 "it into two posts")
    return problems


def _too_long(limits: Limits, text: str, most: int) -> str | None:
    if not text.strip():
        return "must not be empty"
    length, size = COUNTERS[limits.counting](text), len(text.encode())
    if length > most:
        return (f"is {length} characters{UNITS.get(limits.counting, '')}; {limits.name} allows "
                f"at most {most}")
    if limits.max_bytes is not None and size > limits.max_bytes:
        return (f"is {size} bytes in UTF-8; {limits.name} allows at most {limits.max_bytes} "
                "(emoji sequences take many)")
    return None


def check_media(limits: Limits, media: list[MediaInfo]) -> dict[str, str]:
    """Counts, mixes, types, sizes, durations and aspect ratios, naming the rule broken."""
    rules, name, problems = limits.media, limits.name, {}
    videos = [m for m in media if m.mime_type in VIDEOS]
    gifs = [m for m in media if m.mime_type == "image/gif"]
    images = [m for m in media if m not in videos]  # URLs count as images until fetched
    field = _list_field(media)
    if len(videos) > rules.max_videos:
        problems[field] = f"{name} takes at most {rules.max_videos} video(s) in a post"
    elif videos and images and not rules.mixed:
        problems[field] = f"{name} does not take images and a video in the same post"
    elif rules.gif_alone and gifs and len(media) > 1:
        problems[field] = f"{name} takes a GIF only as a post's single media item"
    elif len(images) > rules.max_images:
        problems[field] = f"{name} takes at most {rules.max_images} images in a post"
    if not rules.stored and any(m.field.startswith("mediaIds") for m in media):
        problems["mediaIds"] = (f"{name} posts take media by URL in this version: use mediaUrls "
                                "(stored media is published to every platform)")
    for item in media:
        why = _item_problem(rules, name, item)
        if why:
            problems[item.field] = why
    return problems


def _list_field(media: list[MediaInfo]) -> str:
    return "mediaIds" if any(m.field.startswith("mediaIds") for m in media) else "mediaUrls"


def _item_problem(rules: MediaRules, name: str, m: MediaInfo) -> str | None:
    if m.alt_text is not None and len(m.alt_text) > MAX_ALT_TEXT:
        return f"alt text is {len(m.alt_text)} characters; at most {MAX_ALT_TEXT}"
    if m.mime_type is None:
        return None  # a URL: checked once fetched, at publish time
    video = m.mime_type in VIDEOS
    allowed = rules.video_types if video else rules.image_types
    if m.mime_type not in allowed:
        return f"is {m.mime_type}; {name} takes {', '.join(allowed)}"
    cap = (rules.max_video_bytes if video else
           rules.max_gif_bytes if m.mime_type == "image/gif" and rules.max_gif_bytes else
           rules.max_image_bytes)
    if cap is not None and m.bytes is not None and m.bytes > cap:
        most = f"{cap // MB} MB" if cap % MB == 0 else f"{cap:,} bytes"
        return f"is {m.bytes:,} bytes; {name} takes at most {most} for this type"
    if video and rules.video_seconds and m.duration_seconds is not None:
        low, high = rules.video_seconds
        if not low <= m.duration_seconds <= high:
            return f"lasts {m.duration_seconds:g} s; {name} takes videos of {low:g} to {high:g} s"
    ratio_rule = rules.aspect if video else rules.image_aspect
    if ratio_rule and m.width and m.height:
        low, high = ratio_rule
        if not low - 1e-3 <= m.width / m.height <= high + 1e-3:
            return (f"is {m.width}x{m.height} (aspect ratio {m.width / m.height:.2f}); {name} "
                    f"takes {low:.2f} to {high:.2f} (width / height)")
    return None


def check_media_url(url: str) -> str | None:
    """Why `url` cannot be a media URL, or None when it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    return None
