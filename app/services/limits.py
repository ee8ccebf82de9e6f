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


@dataclass(frozen=True)
class Limits:
    name: str
    max_length: int
    needs_media: bool = False
    weighted: bool = False  # X counts with twitter-text's weights, not characters


LIMITS = {
    Platform.X: Limits("X", 280, weighted=True),
    Platform.LINKEDIN: Limits("LinkedIn", 3000),
    Platform.FACEBOOK: Limits("Facebook", 63206),
    Platform.INSTAGRAM: Limits("Instagram", 2200, needs_media=True),
    Platform.SANDBOX: Limits("the sandbox", 63206),
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


def length_for(platform: str, content: str) -> int:
    """`content`'s length as `platform` counts it: X's weighted count, else characters (code
    points). The composer shows this number (POST /limits/check), so it and the check agree."""
    return weighted_length(content) if LIMITS[platform].weighted else len(content)


def check_post(platform: str, content: str, media_urls: list[str]) -> dict[str, str]:
    """What is wrong with this post for `platform`, by request field; empty when it is fine."""
    limits = LIMITS[platform]
    problems: dict[str, str] = {}
    if not content.strip():
        problems["content"] = "must not be empty"
    else:
        length = length_for(platform, content)
        if length > limits.max_length:
            unit = " (weighted: URLs count 23, CJK and emoji 2)" if limits.weighted else ""
            problems["content"] = (f"is {length} characters{unit}; {limits.name} allows "
                                   f"at most {limits.max_length}")
    if limits.needs_media and not media_urls:
        problems["mediaUrls"] = f"{limits.name} needs at least one image or video URL"
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
