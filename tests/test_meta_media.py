"""Facebook and Instagram media through the worker against the Graph fake: stored media (POST
/media, then mediaIds) uploaded to Facebook (photos as files, a video in chunks) and pulled by
Instagram from signed URLs (a carousel of 3, a Reel); carousel containers (children and parent)
and Facebook's unpublished photos each kept as they are made, so a retry reuses them."""
from __future__ import annotations

import io
from dataclasses import replace
from urllib.parse import urlsplit
from datetime import datetime, timedelta, timezone

import pytest

from app.models import PostSchedule
from app.services.accounts import add_account, create_company
from tests.fakes import running_fakes
from worker.cycle import Worker
from tests.fakes import media as files
from worker.publishers.base import Drafts

from conftest import T0, ApiClient

IG_USER, PAGE = "17841405822304914", "104532118866342"
PHOTOS = [f"https://cdn.example.com/photo-{i}.jpg" for i in range(3)]


class Scene:
    def __init__(self, db, fakes, media_dir):
        company, key = create_company(db.sessions, "Acme", T0)
        db.settings = replace(db.settings, media_dir=str(media_dir),
                              public_url="https://scheduler.example.com")
        self.db, self.fakes, self.api = db, fakes, ApiClient(db, key)
        self.accounts = {platform: add_account(db.sessions, company.id, platform, external_id,
                                               f"EAAG-{platform}-token", T0).id
                         for platform, external_id in (("instagram", IG_USER), ("facebook", PAGE))}
        self.account = self.accounts["instagram"]
        self.settings = replace(db.settings, graph_api_base_url=fakes.graph.base_url,
                                http_read_timeout=0.5, instagram_poll_interval=0.01,
                                retry_backoff=60)
        self.offset = timedelta(minutes=1)

    def upload(self, data: bytes, name: str) -> str:
        response = self.api.post("/media", data={"file": (io.BytesIO(data), name)},
                                 content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    def schedule(self, platform: str = "instagram", **fields) -> str:
        when = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
        response = self.api.post("/schedule-post", json={
            "socialAccountId": self.accounts[platform], "scheduledAt": when, **fields})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["posts"][0]["id"]

    def run(self, advance: timedelta = timedelta(0)):
        self.offset += advance
        clock = lambda: datetime.now(timezone.utc) + self.offset  # noqa: E731
        return Worker(self.settings, self.db.sessions, clock=clock).run()

    def kept(self, post_id: str) -> Drafts:
        with self.db.sessions() as session:
            schedule = session.query(PostSchedule).filter_by(post_detail_id=post_id).one()
            return Drafts.read(schedule.platform_draft_id)

    def creates(self) -> list:
        return [r for r in self.fakes.graph.requests("POST", f"/{IG_USER}/media")
                if r.path.endswith("/media")]


@pytest.fixture
def scene(sqlite, tmp_path):
    with running_fakes() as fakes:
        scene = Scene(sqlite, fakes, tmp_path / "media")
        yield scene
        scene.api.close()


def test_an_instagram_carousel_of_3_makes_3_children_then_the_parent(scene):
    post_id = scene.schedule(content="Three photos", mediaUrls=PHOTOS)
    assert scene.run().published == 1
    children = [r for r in scene.creates() if r.form.get("is_carousel_item") == "true"]
    assert [r.form["image_url"] for r in children] == PHOTOS
    (parent,) = [r for r in scene.creates() if r.form.get("media_type") == "CAROUSEL"]
    ids = [c for c, v in scene.fakes.graph.containers.items() if v["carousel_item"]]
    assert parent.form["children"] == ",".join(ids) and parent.form["caption"] == "Three photos"
    (published,) = scene.fakes.graph.media
    assert published["caption"] == "Three photos"


def test_a_carousel_retry_reuses_the_children_an_earlier_attempt_made(scene):
    post_id = scene.schedule(content="Three photos", mediaUrls=PHOTOS)
    scene.fakes.graph.fail_next("retryable", match=f"/{IG_USER}/media", after=2)  # the 3rd child
    assert scene.run().retried == 1
    kept = scene.kept(post_id)
    assert len(kept.children) == 2 and kept.parent is None
    assert scene.run(advance=timedelta(seconds=61)).published == 1
    made = [r for r in scene.creates() if r.form.get("is_carousel_item") == "true"]
    assert [r.form["image_url"] for r in made] == [PHOTOS[0], PHOTOS[1], PHOTOS[2], PHOTOS[2]]
    assert len(scene.fakes.graph.media) == 1


def test_a_carousel_whose_publish_failed_reuses_its_parent_and_children(scene):
    post_id = scene.schedule(content="Three photos", mediaUrls=PHOTOS)
    scene.fakes.graph.fail_next("retryable", match="/media_publish")
    assert scene.run().retried == 1
    kept = scene.kept(post_id)
    assert len(kept.children) == 3 and kept.parent is not None
    assert scene.run(advance=timedelta(seconds=61)).published == 1
    assert len(scene.creates()) == 4  # 3 children and 1 parent, made once
    assert len(scene.fakes.graph.media) == 1


def test_an_edited_post_does_not_reuse_the_containers_of_its_old_caption(scene):
    post_id = scene.schedule(content="Old caption", mediaUrls=PHOTOS[:1])
    scene.fakes.graph.fail_next("retryable", match="/media_publish")
    assert scene.run().retried == 1
    assert scene.kept(post_id).parent is not None
    edited = scene.api.patch(f"/scheduled-posts/{post_id}", json={"content": "New caption"})
    assert edited.status_code == 200
    assert scene.kept(post_id).parent is None
    assert scene.run(advance=timedelta(seconds=61)).published == 1
    assert [m["caption"] for m in scene.fakes.graph.media] == ["New caption"]




# -- stored media: uploaded to Facebook, fetched by Instagram ---------------------------------

def test_a_facebook_post_with_2_uploaded_photos_attaches_them_unpublished(scene):
    photos = [files.image("JPEG", (120, 90)), files.image("PNG", (90, 120))]
    ids = [scene.upload(data, name) for data, name in zip(photos, ["a.jpg", "b.png"])]
    post_id = scene.schedule("facebook", content="Two loaves",
                             mediaIds=[{"id": ids[0], "altText": "A loaf"}, ids[1]])
    assert scene.run().published == 1
    graph = scene.fakes.graph
    uploads = graph.requests("POST", f"/{PAGE}/photos")
    assert [r.files["source"][1:] for r in uploads] == [("image/jpeg", photos[0]),
                                                        ("image/png", photos[1])]
    assert [r.form["published"] for r in uploads] == ["false", "false"]
    assert uploads[0].form["alt_text_custom"] == "A loaf" and "url" not in uploads[0].form
    (post,) = graph.posts
    assert post["message"] == "Two loaves" and post["photos"] == list(graph.photos)
    assert scene.api.get(f"/scheduled-posts/{post_id}").get_json()["platformPostId"] == post["id"]


def test_a_facebook_retry_attaches_the_photos_an_earlier_attempt_uploaded(scene):
    ids = [scene.upload(files.image("PNG", (80 + i, 80)), f"{i}.png") for i in range(2)]
    post_id = scene.schedule("facebook", content="Retry me", mediaIds=ids)
    scene.fakes.graph.fail_next("retryable", match=f"/{PAGE}/feed")
    assert scene.run().retried == 1
    kept = scene.kept(post_id).children
    assert kept == list(scene.fakes.graph.photos)
    assert scene.run(advance=timedelta(seconds=61)).published == 1
    assert len(scene.fakes.graph.requests("POST", f"/{PAGE}/photos")) == 2  # not uploaded again
    assert scene.fakes.graph.posts[0]["photos"] == list(scene.fakes.graph.photos)


def test_a_stored_facebook_video_goes_up_in_the_chunks_facebook_asks_for(scene):
    scene.fakes.graph.chunk = 1000
    video = files.mp4(12, 1280, 720, data=b"\x02" * 2500)
    scene.schedule("facebook", content="A clip", mediaIds=[scene.upload(video, "clip.mp4")])
    assert scene.run().published == 1
    graph = scene.fakes.graph
    phases = [r.form["upload_phase"] for r in graph.requests("POST", f"/{PAGE}/videos")]
    chunks = -(-len(video) // 1000)
    assert phases == ["start"] + ["transfer"] * chunks + ["finish"]
    (upload,) = graph.uploads.values()
    assert upload["data"] == video and graph.posts[0]["video"] == upload["video"]
    assert graph.posts[0]["message"] == "A clip"


def signed_file(scene, url: str) -> bytes:
    """What a platform gets from a signed URL of ours."""
    assert url.startswith("https://scheduler.example.com/media/")
    parts = urlsplit(url)
    response = scene.api.get(f"{parts.path}?{parts.query}", key=None)
    assert response.status_code == 200
    return response.get_data()


def test_an_instagram_carousel_of_3_stored_images_is_fetched_by_signed_urls(scene):
    images = [files.image("JPEG", (100 + i, 100)) for i in range(3)]
    ids = [scene.upload(data, f"{i}.jpg") for i, data in enumerate(images)]
    scene.schedule(content="Three", mediaIds=[{"id": i, "altText": f"alt {n}"}
                                              for n, i in enumerate(ids)])
    assert scene.run().published == 1
    children = [r.form for r in scene.creates() if r.form.get("is_carousel_item")]
    assert [c["alt_text"] for c in children] == ["alt 0", "alt 1", "alt 2"]
    assert [signed_file(scene, c["image_url"]) for c in children] == images
    (parent,) = [r.form for r in scene.creates() if r.form.get("media_type") == "CAROUSEL"]
    assert len(parent["children"].split(",")) == 3 and len(scene.fakes.graph.media) == 1


def test_an_instagram_reel_from_the_store(scene):
    reel = files.mp4(20, 720, 1280)
    scene.schedule(content="A reel", mediaIds=[scene.upload(reel, "reel.mp4")])
    assert scene.run().published == 1
    (create,) = [r.form for r in scene.creates()]
    assert create["media_type"] == "REELS" and signed_file(scene, create["video_url"]) == reel
    assert scene.fakes.graph.media[0]["caption"] == "A reel"
