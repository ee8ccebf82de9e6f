"""What each platform accepts: content length (X's weighted count), media, and URL rules.

Checked when a post is scheduled or edited, so a post the platform would refuse is refused
at once with the reason, not three attempts later at publish time.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.statuses import Platform

MAX_MEDIA = 10
MAX_URL_LENGTH = 2048
MAX_PARTS = 24  # replies after the post: a thread of 25, as X's composer allows
VIDEO_URL = re.compile(r"\.(mp4|mov|m4v|avi|wmv|webm)(\?|#|$)", re.IGNORECASE)


def is_video_url(url: str) -> bool:
    """A media URL counts as a video by its extension (what the platforms fetch is not read)."""
    return bool(VIDEO_URL.search(url))


@dataclass(frozen=True)
class Limits:
    name: str
    max_length: int         # of the post, and of each part of a thread
    needs_media: bool = False
    weighted: bool = False  # X counts with twitter-text's weights, not characters
    threads: bool = False   # takes `parts` (its publisher has `reply`)
    video_alone: bool = False  # a video must be the post's only medium
    comment_length: int | None = None  # a first comment's limit; None: no first comment


LIMITS = {
    Platform.X: Limits("X", 280, weighted=True, threads=True, comment_length=280),
    Platform.LINKEDIN: Limits("LinkedIn", 3000, comment_length=1250),
    Platform.FACEBOOK: Limits("Facebook", 63206, comment_length=8000, video_alone=True),
    Platform.INSTAGRAM: Limits("Instagram", 2200, needs_media=True, comment_length=2200),
    Platform.SANDBOX: Limits("the sandbox", 63206, threads=True, comment_length=63206),
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


def check_post(platform: str, content: str, media_urls: list[str], parts: list[str] = (),
               first_comment: str | None = None) -> dict[str, str]:
    """What is wrong with this post for `platform`, by request field; empty when it is fine."""
    limits = LIMITS[platform]
    problems: dict[str, str] = {}
    texts = [("content", content, limits.max_length)]
    if parts and not limits.threads:
        problems["parts"] = (f"{limits.name} has no threads: schedule the parts as separate "
                             "posts, or join them into one")
    else:
        texts += [(f"parts[{i}]", text, limits.max_length) for i, text in enumerate(parts)]
    if first_comment is not None and limits.comment_length is None:
        problems["firstComment"] = f"{limits.name} takes no first comment"
    elif first_comment is not None:
        texts.append(("firstComment", first_comment, limits.comment_length))
    for field, text, most in texts:
        why = _too_long(limits, text, most)
        if why:
            problems[field] = why
    if limits.needs_media and not media_urls:
        problems["mediaUrls"] = f"{limits.name} needs at least one image or video URL"
    if limits.video_alone and len(media_urls) > 1 and any(map(is_video_url, media_urls)):
        problems["mediaUrls"] = (f"{limits.name} takes one video alone, or photos only: split "
                                 "it into two posts")
    return problems


def _too_long(limits: Limits, text: str, most: int) -> str | None:
    if not text.strip():
        return "must not be empty"
    length = weighted_length(text) if limits.weighted else len(text)
    if length > most:
        unit = " (weighted: URLs count 23, CJK and emoji 2)" if limits.weighted else ""
        return f"is {length} characters{unit}; {limits.name} allows at most {most}"
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
