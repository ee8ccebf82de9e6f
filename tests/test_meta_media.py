"""Facebook and Instagram media through the worker against the Graph fake: an Instagram
carousel whose containers (children and parent) are each kept as they are made, so a retry
reuses them instead of making them again."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from app.models import PostSchedule
from app.services.accounts import add_account, create_company
from tests.fakes import running_fakes
from worker.cycle import Worker
from worker.publishers import default_publishers
from worker.publishers.base import Account, Drafts, PermanentError, PostToPublish, StoredMedia

from conftest import T0, ApiClient

IG_USER = "17841405822304914"
PHOTOS = [f"https://cdn.example.com/photo-{i}.jpg" for i in range(3)]


class Scene:
    def __init__(self, db, fakes):
        company, key = create_company(db.sessions, "Acme", T0)
        self.db, self.fakes, self.api = db, fakes, ApiClient(db, key)
        self.account = add_account(db.sessions, company.id, "instagram", IG_USER,
                                   "EAAGig-token-4mN8sR", T0).id
        self.settings = replace(db.settings, graph_api_base_url=fakes.graph.base_url,
                                http_read_timeout=0.5, instagram_poll_interval=0.01,
                                retry_backoff=60)
        self.offset = timedelta(minutes=1)

    def schedule(self, **fields) -> str:
        when = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
        response = self.api.post("/schedule-post", json={
            "socialAccountId": self.account, "scheduledAt": when, **fields})
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
def scene(sqlite):
    with running_fakes() as fakes:
        scene = Scene(sqlite, fakes)
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


# -- stored media, uploaded by the worker (the publisher on its own: files on disk) ----------

PAGE = "104532118866342"


@pytest.fixture
def graph(sqlite):
    with running_fakes() as fakes:
        settings = replace(sqlite.settings, graph_api_base_url=fakes.graph.base_url,
                           instagram_poll_interval=0.01)
        yield fakes.graph, settings


def stored(tmp_path, name: str, data: bytes, mime: str, alt: str | None = None) -> StoredMedia:
    path = tmp_path / name
    path.write_bytes(data)
    return StoredMedia(str(path), mime, len(data), alt,
                       url=f"https://scheduler.example.com/media/{name}?sig=abc")


def publish(settings, platform: str, post: PostToPublish, drafts: list | None = None) -> str:
    publisher = default_publishers(settings)[platform]
    token = {"facebook": "EAAGpage-token", "instagram": "EAAGig-token"}[platform]
    account = Account("acc", platform, PAGE if platform == "facebook" else IG_USER, None, token)
    if drafts is not None:
        post = replace(post, keep_draft=drafts.append)
    return publisher.publish(post, account).platform_post_id


def a_post(**fields) -> PostToPublish:
    return PostToPublish(**{"id": "p1", "content": "Two photos", "media_urls": [],
                            "schedule_id": 1, "attempt": 1, **fields})


def test_a_facebook_post_with_2_uploaded_photos_attaches_them_unpublished(graph, tmp_path):
    fake, settings = graph
    files = (stored(tmp_path, "a.jpg", b"\xff\xd8jpeg-a", "image/jpeg", "A loaf"),
             stored(tmp_path, "b.png", b"\x89PNG-b", "image/png"))
    kept: list = []
    post_id = publish(settings, "facebook", a_post(stored_media=files), kept)
    uploads = fake.requests("POST", f"/{PAGE}/photos")
    assert [r.files["source"] for r in uploads] == [("a.jpg", "image/jpeg", b"\xff\xd8jpeg-a"),
                                                    ("b.png", "image/png", b"\x89PNG-b")]
    assert [r.form["published"] for r in uploads] == ["false", "false"]
    assert uploads[0].form["alt_text_custom"] == "A loaf" and "url" not in uploads[0].form
    (post,) = fake.posts
    assert post["id"] == post_id and post["message"] == "Two photos"
    assert post["photos"] == list(fake.photos) and Drafts.read(kept[-1]).children == post["photos"]


def test_a_facebook_retry_attaches_the_photos_an_earlier_attempt_uploaded(graph, tmp_path):
    fake, settings = graph
    files = tuple(stored(tmp_path, f"{i}.jpg", b"\xff\xd8" + bytes([i]), "image/jpeg")
                  for i in range(3))
    earlier = Drafts(["9001", "9002"]).dump()
    fake.photos.update({"9001": {"page": PAGE}, "9002": {"page": PAGE}})
    publish(settings, "facebook", a_post(stored_media=files, draft_id=earlier))
    assert len(fake.requests("POST", f"/{PAGE}/photos")) == 1  # only the third
    assert fake.posts[0]["photos"][:2] == ["9001", "9002"]


def test_a_facebook_video_from_the_store_goes_up_in_the_chunks_facebook_asks_for(graph, tmp_path):
    fake, settings = graph
    fake.chunk = 1000
    data = bytes(range(256)) * 10  # 2,560 bytes: three chunks
    video = stored(tmp_path, "clip.mp4", data, "video/mp4")
    video_id = publish(settings, "facebook", a_post(content="A clip", stored_media=(video,)))
    phases = [r.form["upload_phase"] for r in fake.requests("POST", f"/{PAGE}/videos")]
    assert phases == ["start", "transfer", "transfer", "transfer", "finish"]
    (upload,) = fake.uploads.values()
    assert upload["data"] == data and upload["video"] == video_id
    assert fake.posts[0]["video"] == video_id and fake.posts[0]["message"] == "A clip"


def test_an_instagram_carousel_of_3_stored_images_is_fetched_by_their_signed_urls(graph, tmp_path):
    fake, settings = graph
    files = tuple(stored(tmp_path, f"{i}.jpg", b"\xff\xd8", "image/jpeg", f"alt {i}")
                  for i in range(3))
    publish(settings, "instagram", a_post(content="Three", stored_media=files))
    children = [r.form for r in fake.requests("POST", f"/{IG_USER}/media")
                if r.form.get("is_carousel_item")]
    assert [(c["image_url"], c["alt_text"]) for c in children] == [
        (f.url, f.alt_text) for f in files]
    (parent,) = [r.form for r in fake.requests("POST", f"/{IG_USER}/media")
                 if r.form.get("media_type") == "CAROUSEL"]
    assert len(parent["children"].split(",")) == 3 and len(fake.media) == 1


def test_an_instagram_reel_from_the_store(graph, tmp_path):
    fake, settings = graph
    reel = stored(tmp_path, "reel.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    publish(settings, "instagram", a_post(content="A reel", stored_media=(reel,)))
    (create,) = [r.form for r in fake.requests("POST", f"/{IG_USER}/media")
                 if r.path.endswith("/media")]
    assert (create["media_type"], create["video_url"]) == ("REELS", reel.url)
    assert fake.media[0]["caption"] == "A reel"


def test_instagram_refuses_stored_media_without_a_public_url(graph, tmp_path):
    fake, settings = graph
    image = replace(stored(tmp_path, "a.jpg", b"\xff\xd8", "image/jpeg"), url=None)
    with pytest.raises(PermanentError, match="SCHEDULER_PUBLIC_URL"):
        publish(settings, "instagram", a_post(stored_media=(image,)))
    assert fake.received == []
