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
from worker.publishers.instagram import Containers

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

    def kept(self, post_id: str) -> Containers:
        with self.db.sessions() as session:
            schedule = session.query(PostSchedule).filter_by(post_detail_id=post_id).one()
            return Containers.read(schedule.platform_draft_id)

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
