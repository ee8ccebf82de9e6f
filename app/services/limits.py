"""What each platform accepts: content length (counted each platform's way), media, and URL rules.

Checked when a post is scheduled or edited, so a post the platform would refuse is refused
at once with the reason, not three attempts later at publish time.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import cast
from urllib.parse import urlsplit

import regex

from app.statuses import Platform

MAX_MEDIA = 10
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class Limits:
    name: str
    max_length: int
    needs_media: bool = False
    counting: str = "characters"  # how the platform counts: a key of COUNTERS
    max_media: int = MAX_MEDIA


LIMITS = {
    Platform.X: Limits("X", 280, counting="weighted"),
    Platform.LINKEDIN: Limits("LinkedIn", 3000),
    Platform.FACEBOOK: Limits("Facebook", 63206),
    Platform.INSTAGRAM: Limits("Instagram", 2200, needs_media=True),
    Platform.SANDBOX: Limits("the sandbox", 63206),
    Platform.BLUESKY: Limits("Bluesky", 300, counting="graphemes", max_media=4),
    # An instance may allow more (its /api/v2/instance): the account's own limit, read at
    # connect, replaces these two (see check_post).
    Platform.MASTODON: Limits("Mastodon", 500, counting="mastodon", max_media=4),
    Platform.THREADS: Limits("Threads", 500, counting="threads", max_media=20),
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
               account_meta: dict | None = None) -> dict[str, str]:
    """What is wrong with this post for `platform`, by request field; empty when it is fine."""
    limits = limits_for(platform, account_meta)
    problems: dict[str, str] = {}
    if not content.strip():
        problems["content"] = "must not be empty"
    else:
        length = length_for(platform, content, account_meta)
        if length > limits.max_length:
            problems["content"] = (f"is {length} characters{UNITS.get(limits.counting, '')}; "
                                   f"{limits.name} allows at most {limits.max_length}")
    if limits.needs_media and not media_urls:
        problems["mediaUrls"] = f"{limits.name} needs at least one image or video URL"
    elif len(media_urls) > limits.max_media:
        problems["mediaUrls"] = f"{limits.name} takes at most {limits.max_media} images or videos"
    return problems


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
