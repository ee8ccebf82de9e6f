"""Media end to end through the worker against the fakes: X with 4 images (alt text) and a
chunked video with STATUS polling, LinkedIn with 3 images (multiImage) and a video (parts with
ETags); uploads reused by a retry; mediaUrls fetched safely (private addresses, redirects, 404
and timeouts)."""
from __future__ import annotations

import socket
from pathlib import Path
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app import safeurl
from app.errors import InvalidInput
from app.models import PostMedia, SocialAccount, PostSchedule, PublishAttempt
from app.services import media as store
from app.services.accounts import add_account, create_company
from app.services.posts import NewPost, schedule_post
from app.services.media import MediaRef
from tests.fakes import running_fakes
from tests.fakes import media as files
from worker.cycle import Worker

from conftest import T0

X_ID, LINKEDIN_ID = "2244994945", "urn:li:organization:5515715"


class Rig:
    def __init__(self, db, fakes, tmp_path):
        self.db, self.fakes = db, fakes
        self.settings = replace(
            db.settings, x_api_base_url=fakes.x.base_url, linkedin_api_base_url=fakes.linkedin.base_url,
            graph_api_base_url=fakes.graph.base_url, bluesky_pds_url=fakes.bluesky.base_url,
            threads_api_base_url=fakes.threads.base_url, public_url="https://scheduler.example",
            media_dir=str(tmp_path / "media"),
            media_allow_private=1, media_fetch_timeout=0.5, http_read_timeout=2.0,
            instagram_poll_interval=0.01, concurrency=2)
        self.company_id = create_company(db.sessions, "Acme", T0)[0].id
        self.now = datetime.now(timezone.utc)

    def account(self, platform: str, external_id: str) -> str:
        return add_account(self.db.sessions, self.company_id, platform, external_id,
                           f"{platform}-token-secret", T0).id

    def stored(self, data: bytes, name: str = "f") -> str:
        return store.store(self.db.sessions, self.settings.media_dir, 10 ** 9, self.company_id,
                           [data], name, self.now).id

    def post(self, account_id: str, content: str, refs: list[MediaRef], urls=(),
             parts=()) -> str:
        (post,) = schedule_post(self.db.sessions, self.company_id, NewPost(
            [account_id], content, self.now + timedelta(seconds=1), media=tuple(refs),
            media_urls=tuple(urls), parts=tuple(parts)), self.now).posts
        return post.id

    def run(self, later: float = 5):
        at = datetime.now(timezone.utc) + timedelta(seconds=later)
        return Worker(self.settings, self.db.sessions, clock=lambda: at).run()

    def state(self, post_id: str) -> dict:
        with self.db.sessions() as session:
            schedule = session.scalar(select(PostSchedule).where(PostSchedule.post_detail_id == post_id))
            attempts = session.scalars(select(PublishAttempt).where(
                PublishAttempt.post_schedule_id == schedule.id).order_by(PublishAttempt.id)).all()
            return {"status": schedule.status, "error": schedule.last_error,
                    "attempts": [(a.outcome, a.error_message) for a in attempts]}


@pytest.fixture
def rig(sqlite, tmp_path):
    with running_fakes() as fakes:
        yield Rig(sqlite, fakes, tmp_path)


def test_x_post_with_four_images_and_alt_text(rig):
    account = rig.account("x", X_ID)
    refs = [MediaRef(rig.stored(files.image("PNG", (100 + i, 100))), alt_text=f"picture {i}")
            for i in range(4)]
    post_id = rig.post(account, "Four pictures", refs)
    assert rig.run().published == 1, rig.state(post_id)
    (tweet,) = rig.fakes.x.tweets
    assert len(tweet["media_ids"]) == 4
    uploaded = [rig.fakes.x.media[m] for m in tweet["media_ids"]]
    assert [m["alt_text"] for m in uploaded] == [f"picture {i}" for i in range(4)]
    assert all(m["category"] == "tweet_image" for m in uploaded)
    assert len(rig.fakes.x.requests("POST", "/2/media/upload")) == 4


def test_x_video_is_chunked_and_polled_until_processed(rig):
    account = rig.account("x", X_ID)
    video = files.mp4(30, 1280, 720, data=b"\x01" * (9 * 1024 * 1024))  # three 4 MB chunks
    post_id = rig.post(account, "A video", [MediaRef(rig.stored(video, "v.mp4"))])
    assert rig.run().published == 1, rig.state(post_id)
    (tweet,) = rig.fakes.x.tweets
    (media,) = [rig.fakes.x.media[m] for m in tweet["media_ids"]]
    assert media["category"] == "tweet_video" and media["total"] == len(video)
    assert sorted(media["segments"]) == [0, 1, 2]
    assert max(media["segments"].values()) <= 4 * 1024 * 1024
    assert len(rig.fakes.x.requests("GET", "/2/media/upload")) == rig.fakes.x.status_polls + 1


def test_an_upload_is_remembered_and_reused_by_the_retry(rig):
    account = rig.account("x", X_ID)
    refs = [MediaRef(rig.stored(files.image("JPEG")))]
    post_id = rig.post(account, "Retry me", refs)
    rig.fakes.x.fail_next("retryable", match="POST /2/tweets")
    assert rig.run().retried == 1
    with rig.db.sessions() as session:
        kept = session.scalar(select(PostMedia.platform_media_id))
    assert kept in rig.fakes.x.media
    assert rig.run(later=600).published == 1, rig.state(post_id)
    assert len(rig.fakes.x.requests("POST", "/2/media/upload")) == 1  # not uploaded twice
    assert rig.fakes.x.tweets[0]["media_ids"] == [kept]


def test_linkedin_post_with_three_images_as_multi_image(rig):
    account = rig.account("linkedin", LINKEDIN_ID)
    refs = [MediaRef(rig.stored(files.image("JPEG", (200, 100 + i))), alt_text=f"slide {i}")
            for i in range(3)]
    post_id = rig.post(account, "Three slides", refs)
    assert rig.run().published == 1, rig.state(post_id)
    (post,) = rig.fakes.linkedin.posts
    images = post["content"]["multiImage"]["images"]
    assert [i["altText"] for i in images] == ["slide 0", "slide 1", "slide 2"]
    assert all(rig.fakes.linkedin.assets[i["id"]]["bytes"] > 0 for i in images)
    assert len(rig.fakes.linkedin.requests("PUT", "/dms-uploads/image/")) == 3


def test_linkedin_video_in_parts_with_their_etags(rig):
    account = rig.account("linkedin", LINKEDIN_ID)
    video = files.mp4(20, 1920, 1080, data=b"\x02" * (9 * 1024 * 1024))
    post_id = rig.post(account, "A LinkedIn video", [MediaRef(rig.stored(video, "v.mp4"))])
    assert rig.run().published == 1, rig.state(post_id)
    (post,) = rig.fakes.linkedin.posts
    asset = rig.fakes.linkedin.assets[post["content"]["media"]["id"]]
    assert asset["kind"] == "video" and asset["bytes"] == len(video) and len(asset["parts"]) == 3


# -- mediaUrls fetched by the worker ------------------------------------------------------------

@pytest.fixture
def host():
    with files.MediaHost() as server:
        yield server


def test_a_media_url_is_fetched_and_uploaded_with_its_alt_text(rig, host):
    host.files["/a.png"] = files.image("PNG")
    account = rig.account("x", X_ID)
    post_id = rig.post(account, "From a URL", [MediaRef(url=host.url("/a.png"), alt_text="alt")],
                       urls=[host.url("/a.png")])
    assert rig.run().published == 1, rig.state(post_id)
    (media,) = [rig.fakes.x.media[m] for m in rig.fakes.x.tweets[0]["media_ids"]]
    assert media["alt_text"] == "alt" and host.asked == ["/a.png"]
    assert list((Path(rig.settings.media_dir) / ".fetch").iterdir()) == []  # the download is gone


@pytest.mark.parametrize("url, why", [
    ("http://localhost:{port}/a.png", "localhost resolves to 127.0.0.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 resolves to 169.254.169.254"),
    ("http://[::1]:{port}/a.png", "::1 resolves to ::1"),
])
def test_private_loopback_and_metadata_addresses_are_refused(rig, host, url, why):
    rig.settings = replace(rig.settings, media_allow_private=0)
    url = url.format(port=host.port)
    account = rig.account("x", X_ID)
    post_id = rig.post(account, "Private", [], urls=[url])
    assert rig.run().failed == 1
    state = rig.state(post_id)
    assert why in state["error"] and "SCHEDULER_MEDIA_ALLOW_PRIVATE=1" in state["error"]
    assert url in state["error"] and host.asked == [] and rig.fakes.x.tweets == []


def test_a_redirect_to_a_private_address_is_refused(host, monkeypatch, tmp_path):
    """The first hop is public; its redirect points at 127.0.0.1 and is checked again."""
    real = socket.getaddrinfo
    monkeypatch.setattr("socket.getaddrinfo", lambda name, *a, **k: real(
        "127.0.0.1" if name == "cdn.example" else name, *a, **k))
    host.redirects["/moved.png"] = host.url("/a.png", host="localhost")
    host.files["/a.png"] = files.image("PNG")
    resolve = lambda name: ["93.184.215.14"] if name == "cdn.example" else safeurl._resolve(name)
    with pytest.raises(safeurl.FetchRefused) as refused, open(tmp_path / "out", "wb") as out:
        safeurl.fetch(host.url("/moved.png", host="cdn.example"), out, max_bytes=10 ** 6,
                      timeout=1, allow_private=False, resolve=resolve)
    assert "localhost resolves to 127.0.0.1" in str(refused.value)
    assert host.asked == ["/moved.png"]  # the redirect's target was never asked


def test_a_redirect_is_followed_and_the_size_capped(host, tmp_path):
    host.redirects["/moved.png"] = host.url("/a.png")
    host.files["/a.png"] = b"x" * 5000
    with open(tmp_path / "out", "wb") as out:
        assert safeurl.fetch(host.url("/moved.png"), out, max_bytes=5000, timeout=1,
                             allow_private=True) == 5000
    with pytest.raises(safeurl.FetchRefused, match="SCHEDULER_MEDIA_MAX_BYTES"), \
            open(tmp_path / "out", "wb") as out:
        safeurl.fetch(host.url("/a.png"), out, max_bytes=4999, timeout=1, allow_private=True)


@pytest.mark.parametrize("path, words", [("/missing.png", "answered HTTP 404"),
                                          ("/slow.png", "could not be fetched (ReadTimeout)")])
def test_a_404_or_timeout_is_retried_then_failed_naming_the_url_not_the_token(rig, host, path, words):
    host.files["/slow.png"] = files.image("PNG")
    host.slow["/slow.png"] = 1.5
    account = rig.account("x", X_ID)
    post_id = rig.post(account, "Missing", [], urls=[host.url(path)])
    assert rig.run().retried == 1
    assert rig.run(later=400).retried == 1
    assert rig.run(later=1000).failed == 1
    state = rig.state(post_id)
    assert [o for o, _ in state["attempts"]] == ["retry", "retry", "failed"]
    assert all(host.url(path) in m and words in m and "x-token-secret" not in m
               for _, m in state["attempts"]), state


def test_an_animated_gif_goes_up_chunked_as_tweet_gif(rig):
    account = rig.account("x", X_ID)
    post_id = rig.post(account, "A GIF", [MediaRef(rig.stored(files.image("GIF", frames=3)))])
    assert rig.run().published == 1, rig.state(post_id)
    (media,) = [rig.fakes.x.media[m] for m in rig.fakes.x.tweets[0]["media_ids"]]
    assert media["category"] == "tweet_gif" and media["type"] == "image/gif"


def test_a_video_still_processing_defers_and_the_next_attempt_reuses_the_upload(rig):
    rig.settings = replace(rig.settings, instagram_poll_attempts=2)
    rig.fakes.x.status_polls = 3  # longer than one attempt polls
    account = rig.account("x", X_ID)
    post_id = rig.post(account, "Slow video", [MediaRef(rig.stored(files.mp4(10), "v.mp4"))])
    assert rig.run().deferred == 1
    assert "still processing" in rig.state(post_id)["attempts"][0][1]
    assert rig.run(later=120).published == 1, rig.state(post_id)
    assert len(rig.fakes.x.requests("POST", "/2/media/upload/initialize")) == 1  # uploaded once


def test_linkedin_reuses_an_earlier_attempts_image(rig):
    account = rig.account("linkedin", LINKEDIN_ID)
    post_id = rig.post(account, "Retry on LinkedIn", [MediaRef(rig.stored(files.image("JPEG")))])
    rig.fakes.linkedin.fail_next("retryable", match="POST /rest/posts")
    assert rig.run().retried == 1
    assert rig.run(later=600).published == 1, rig.state(post_id)
    assert len(rig.fakes.linkedin.requests("PUT", "/dms-uploads/")) == 1


def test_a_refused_upload_fails_the_post_with_the_platforms_message(rig):
    account = rig.account("x", X_ID)
    post_id = rig.post(account, "Bad video", [MediaRef(rig.stored(files.mp4(10), "v.mp4"))])
    rig.fakes.x.fail_next("permanent", match="/finalize")
    assert rig.run().failed == 1
    state = rig.state(post_id)
    assert "X refused the request (HTTP 400" in state["error"] and rig.fakes.x.tweets == []


def test_a_refused_token_on_upload_flags_the_account(rig):
    account = rig.account("linkedin", LINKEDIN_ID)
    post_id = rig.post(account, "No token", [MediaRef(rig.stored(files.image("JPEG")))])
    rig.fakes.linkedin.fail_next("auth", match="/rest/images")
    assert rig.run().failed == 1
    assert "Reconnect the linkedin account" in rig.state(post_id)["error"]
    assert "linkedin-token-secret" not in rig.state(post_id)["error"]


BLUESKY_DID = "did:plc:acme7x2k4q"  # the fake's acme.bsky.social


def test_bluesky_post_with_a_link_a_mention_and_two_images(rig):
    account = rig.account("bluesky", BLUESKY_DID)
    rig.fakes.bluesky.access["bluesky-token-secret"] = BLUESKY_DID  # the account's session
    refs = [MediaRef(rig.stored(files.image("PNG", (120, 80))), alt_text="the launch"),
            MediaRef(rig.stored(files.image("JPEG", (90, 90))))]
    text = "Launch with @alice.bsky.social: https://example.com/launch"
    post_id = rig.post(account, text, refs)
    assert rig.run().published == 1, rig.state(post_id)
    (record,) = [r["value"] for r in rig.fakes.bluesky.records]
    kinds = sorted(f["features"][0]["$type"].rsplit("#")[1] for f in record["facets"])
    assert kinds == ["link", "mention"]
    images = record["embed"]["images"]
    assert record["embed"]["$type"] == "app.bsky.embed.images" and len(images) == 2
    assert [i["alt"] for i in images] == ["the launch", ""]
    assert [i["aspectRatio"] for i in images] == [{"width": 120, "height": 80},
                                                 {"width": 90, "height": 90}]
    blobs = [rig.fakes.bluesky.blobs[i["image"]["ref"]["$link"]] for i in images]
    assert [b["mimeType"] for b in blobs] == ["image/png", "image/jpeg"]
    assert len(rig.fakes.bluesky.requests("POST", "uploadBlob")) == 2


def test_bluesky_retry_reuses_the_uploaded_blobs(rig):
    account = rig.account("bluesky", BLUESKY_DID)
    rig.fakes.bluesky.access["bluesky-token-secret"] = BLUESKY_DID
    refs = [MediaRef(rig.stored(files.image("PNG", (50 + i, 50)))) for i in range(2)]
    post_id = rig.post(account, "Two pictures", refs)
    rig.fakes.bluesky.fail_next("retryable", match="createRecord")
    assert rig.run().retried == 1, rig.state(post_id)
    assert rig.run(later=600).published == 1, rig.state(post_id)
    assert len(rig.fakes.bluesky.requests("POST", "uploadBlob")) == 2  # not again
    (record,) = [r["value"] for r in rig.fakes.bluesky.records]
    assert len(record["embed"]["images"]) == 2


def test_bluesky_refuses_an_image_over_a_million_bytes_at_schedule_time(rig):
    account = rig.account("bluesky", BLUESKY_DID)
    big = rig.stored(files.image("PNG", (10, 10)) + b"\0" * 1_000_001)
    with pytest.raises(InvalidInput) as refused:
        rig.post(account, "Too big", [MediaRef(big)])
    assert "Bluesky takes at most 1,000,000 bytes" in str(refused.value.fields)


def test_mastodon_thread_of_three_with_an_image_on_the_first(rig):
    account = rig.account("mastodon", "@acme@mastodon.example")
    with rig.db.sessions.begin() as session:  # what connect keeps
        session.get(SocialAccount, account).auth_meta = {
            "instance": rig.fakes.mastodon.base_url, "account_id": rig.fakes.mastodon.user["id"]}
    rig.fakes.mastodon.processing_polls = 2
    refs = [MediaRef(rig.stored(files.image("PNG", (64, 64))), alt_text="our new oven")]
    post_id = rig.post(account, "A thread, 1/3", refs, parts=["2/3", "3/3"])
    assert rig.run().published == 1, rig.state(post_id)
    first, second, third = rig.fakes.mastodon.statuses
    (upload,) = rig.fakes.mastodon.requests("POST", "/api/v2/media")
    assert upload.form == {"description": "our new oven"}
    assert upload.files["file"][1] == "image/png"
    (attached,) = first["media_attachments"]
    assert attached["description"] == "our new oven" and attached["url"]
    assert len(rig.fakes.mastodon.requests("GET", "/api/v1/media/")) == 3  # 206, 206, 200
    assert second["in_reply_to_id"] == first["id"] and third["in_reply_to_id"] == second["id"]
    assert second["media_attachments"] == [] and third["media_attachments"] == []


def test_threads_carousel_of_an_image_a_video_and_a_url(rig):
    account = rig.account("threads", "17841400008460056")
    rig.fakes.threads.checks_until_finished = 0
    refs = [MediaRef(rig.stored(files.image("JPEG", (80, 80))), alt_text="the shop"),
            MediaRef(rig.stored(files.mp4(10, 720, 1280))),
            MediaRef(url="https://cdn.example.com/c.jpg")]
    post_id = rig.post(account, "A carousel", refs, urls=["https://cdn.example.com/c.jpg"])
    assert rig.run().published == 1, rig.state(post_id)
    (thread,) = rig.fakes.threads.threads
    assert thread["type"] == "CAROUSEL" and thread["text"] == "A carousel"
    kinds = [(m["type"], m["item"]) for m in thread["media"]]
    assert kinds == [("IMAGE", True), ("VIDEO", True), ("IMAGE", True)]
    assert thread["media"][0]["url"].startswith("https://scheduler.example/")
    assert thread["media"][0]["alt_text"] == "the shop"
    assert thread["media"][2]["url"] == "https://cdn.example.com/c.jpg"


def test_threads_carousel_children_are_kept_and_reused_by_the_retry(rig):
    user = "17841400008460056"
    account = rig.account("threads", user)
    rig.fakes.threads.checks_until_finished = 0
    refs = [MediaRef(url=f"https://cdn.example.com/{i}.jpg") for i in range(2)]
    post_id = rig.post(account, "Kept", refs)
    # the parent (the third container) fails once: its two children are kept on the row
    rig.fakes.threads.fail_next("retryable", match=f"POST /v1.0/{user}/threads", after=2)
    assert rig.run().retried == 1, rig.state(post_id)
    assert rig.run(later=600).published == 1, rig.state(post_id)
    made = [c for c in rig.fakes.threads.containers.values() if c["item"]]
    assert len(made) == 2  # not made again
    (thread,) = rig.fakes.threads.threads
    assert [m["url"] for m in thread["media"]] == [f"https://cdn.example.com/{i}.jpg"
                                                  for i in range(2)]
