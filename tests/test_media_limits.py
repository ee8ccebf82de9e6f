"""Every documented media limit of app/services/limits.py, one case each: what passes at the
edge and what is refused past it, with the rule named (a 422 at schedule time)."""
from __future__ import annotations

from dataclasses import replace
from unittest.mock import patch

import pytest

from app.services import media as store
from app.services.accounts import add_account
from app.services.limits import LIMITS, MB, MediaInfo, check_post
from conftest import T0, ApiClient
from fakes import media as files

JPEG, PNG, GIF, WEBP, MP4, MOV = ("image/jpeg", "image/png", "image/gif", "image/webp",
                                  "video/mp4", "video/quicktime")


def image(i: int = 0, mime: str = JPEG, size: int = 100_000, w: int = 1000, h: int = 1000,
          alt: str | None = None) -> MediaInfo:
    return MediaInfo(f"mediaIds[{i}]", mime, size, w, h, None, alt)


def video(i: int = 0, seconds: float = 30, size: int = 10 * MB, w: int = 1280, h: int = 720,
          mime: str = MP4) -> MediaInfo:
    return MediaInfo(f"mediaIds[{i}]", mime, size, w, h, seconds)


def problems(platform: str, media: list[MediaInfo]) -> dict[str, str]:
    """What check_post finds; Facebook's and Instagram's rules as they apply to what their
    publishers will read (stored media is refused for them as a whole until then: below)."""
    limits = LIMITS[platform]
    if not limits.media.stored:
        with_stored = replace(limits, media=replace(limits.media, stored=True))
        with patch.dict(LIMITS, {platform: with_stored}):
            return check_post(platform, "Hello", [], media=media)
    return check_post(platform, "Hello", [], media=media)


CASES = [
    # (platform, media, field refused or None, words of the rule)
    ("x", [image(i) for i in range(4)], None, ""),
    ("x", [image(i) for i in range(5)], "mediaIds", "at most 4 images"),
    ("x", [video(0), video(1)], "mediaIds", "at most 1 video"),
    ("x", [video(0), image(1)], "mediaIds", "images and a video"),
    ("x", [image(0, GIF), image(1)], "mediaIds", "GIF only as a post's single"),
    ("x", [image(0, size=5 * MB + 1)], "mediaIds[0]", "at most 5 MB"),
    ("x", [image(0, GIF, size=15 * MB)], None, ""),
    ("x", [image(0, GIF, size=15 * MB + 1)], "mediaIds[0]", "at most 15 MB"),
    ("x", [video(size=512 * MB + 1)], "mediaIds[0]", "at most 512 MB"),
    ("x", [video(seconds=0.4)], "mediaIds[0]", "0.5 to 140 s"),
    ("x", [video(seconds=140)], None, ""),
    ("x", [video(seconds=141)], "mediaIds[0]", "0.5 to 140 s"),
    ("x", [video(w=3100, h=1000)], "mediaIds[0]", "aspect ratio"),
    ("x", [video(w=1000, h=3100)], "mediaIds[0]", "aspect ratio"),
    ("x", [image(0, alt="a" * 1001)], "mediaIds[0]", "alt text"),
    ("linkedin", [image(i) for i in range(20)], None, ""),
    ("linkedin", [image(i) for i in range(21)], "mediaIds", "at most 20 images"),
    ("linkedin", [image(0, WEBP)], "mediaIds[0]", "LinkedIn takes image/jpeg"),
    ("linkedin", [video(mime=MOV)], "mediaIds[0]", "LinkedIn takes video/mp4"),
    ("linkedin", [video(seconds=2.9)], "mediaIds[0]", "3 to 1800 s"),
    ("linkedin", [video(seconds=1801)], "mediaIds[0]", "3 to 1800 s"),
    ("linkedin", [video(size=500 * MB + 1)], "mediaIds[0]", "at most 500 MB"),
    ("linkedin", [video(0), image(1)], "mediaIds", "images and a video"),
    ("facebook", [image(i) for i in range(10)], None, ""),
    ("facebook", [image(i) for i in range(11)], "mediaIds", "at most 10 images"),
    ("facebook", [video(0), video(1)], "mediaIds", "at most 1 video"),
    ("facebook", [video(0), image(1)], "mediaIds", "images and a video"),
    ("instagram", [image(i) for i in range(10)], None, ""),
    ("instagram", [image(i) for i in range(11)], "mediaIds", "at most 10 images"),
    ("instagram", [image(0, PNG)], "mediaIds[0]", "Instagram takes image/jpeg"),
    ("instagram", [image(0, size=8 * MB + 1)], "mediaIds[0]", "at most 8 MB"),
    ("instagram", [image(0, w=1000, h=1300)], "mediaIds[0]", "aspect ratio"),
    ("instagram", [image(0, w=1910, h=999)], "mediaIds[0]", "aspect ratio"),
    ("instagram", [image(0, w=800, h=1000), image(1, w=1910, h=1000)], None, ""),
    ("instagram", [video(seconds=2)], "mediaIds[0]", "3 to 900 s"),
    ("instagram", [video(seconds=901)], "mediaIds[0]", "3 to 900 s"),
    ("instagram", [video(size=300 * MB + 1)], "mediaIds[0]", "at most 300 MB"),
    ("instagram", [video(0), image(1)], None, ""),  # a carousel mixes them
    ("instagram", [], "mediaUrls", "needs at least one image or video"),
    # app.bsky.embed.images: 4 images of at most 1,000,000 bytes, JPEG/PNG/WebP, no video
    ("bluesky", [image(i, size=1_000_000) for i in range(4)], None, ""),
    ("bluesky", [image(i) for i in range(5)], "mediaIds", "at most 4 images"),
    ("bluesky", [image(0, size=1_000_001)], "mediaIds[0]", "at most 1,000,000 bytes"),
    ("bluesky", [image(0, mime=GIF)], "mediaIds[0]", "is image/gif"),
    ("bluesky", [image(0, mime=WEBP)], None, ""),
    ("bluesky", [video(0)], "mediaIds", "at most 0 video(s)"),
    # Mastodon's defaults: 4 images (16 MB) or 1 video (99 MB), no mix
    ("mastodon", [image(i, size=16 * MB) for i in range(4)], None, ""),
    ("mastodon", [image(i) for i in range(5)], "mediaIds", "at most 4 images"),
    ("mastodon", [image(0, size=16 * MB + 1)], "mediaIds[0]", "at most 16 MB"),
    ("mastodon", [video(0, size=100 * MB)], "mediaIds[0]", "at most 99 MB"),
    ("mastodon", [video(0), image(1)], "mediaIds", "does not take images and a video"),
    # Threads: a carousel of up to 20 mixed; JPEG/PNG 8 MB; MP4/MOV 1 GB, 5 min
    ("threads", [image(i) for i in range(10)] + [video(i) for i in range(10, 20)], None, ""),
    ("threads", [image(i) for i in range(21)], "mediaIds", "at most 20 images"),
    ("threads", [image(0, mime=WEBP)], "mediaIds[0]", "is image/webp"),
    ("threads", [image(0, size=8 * MB + 1)], "mediaIds[0]", "at most 8 MB"),
    ("threads", [video(0, seconds=301)], "mediaIds[0]", "0 to 300 s"),
]


@pytest.mark.parametrize("platform, media, field, words", CASES)
def test_each_documented_limit(platform, media, field, words):
    found = problems(platform, media)
    if field is None:
        assert found == {}
    else:
        assert words in found.get(field, ""), found


def test_facebook_instagram_bluesky_mastodon_and_threads_take_stored_media():
    assert check_post("instagram", "Hi", [], media=[image(0)]) == {}
    assert check_post("facebook", "Hi", [], media=[image(0), image(1)]) == {}
    assert check_post("bluesky", "Hi", [], media=[image(0), image(1)]) == {}
    assert check_post("mastodon", "Hi", [], media=[image(0), image(1)]) == {}
    assert check_post("threads", "Hi", [], media=[image(0), video(1)]) == {}
    assert check_post("bluesky", "Hi", ["https://example.com/a.jpg"]) == {}


def test_a_url_counts_but_its_type_waits_for_publish_time():
    urls = [MediaInfo(f"mediaUrls[{i}]") for i in range(5)]
    assert "at most 4 images" in problems("x", urls)["mediaUrls"]
    assert problems("x", urls[:4]) == {}


def test_the_api_refuses_with_422_naming_the_rule(sqlite, tenant, tmp_path):
    sqlite.settings = replace(sqlite.settings, media_dir=str(tmp_path))
    account = add_account(sqlite.sessions, tenant.company_id, "x", "123", "tok", T0).id
    long_video = store.store(sqlite.sessions, str(tmp_path), 10 ** 8, tenant.company_id,
                             [files.mp4(200)], "v.mp4", T0).id
    api = ApiClient(sqlite, tenant.api_key)
    try:
        answer = api.post("/schedule-post", json={
            "socialAccountId": account, "content": "Hi", "scheduledAt": "2030-01-01T09:00:00Z",
            "mediaIds": [long_video]})
    finally:
        api.close()
    assert answer.status_code == 422
    assert "0.5 to 140 s" in answer.get_json()["error"]["fields"]["mediaIds[0]"]
