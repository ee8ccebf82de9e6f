"""Threads and first comments, end to end: scheduled through the API, published by the worker
against the fakes of tests/fakes, resumed after a failure or a killed worker without reposting a
part (each part's id is kept as it goes out), refused at schedule time where the platform has no
threads or the text is over its limit."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.models import PostPart, PostSchedule
from app.services.accounts import add_account, create_company
from tests.fakes import running_fakes
from worker import queue
from worker.cycle import Worker

from conftest import T0, ApiClient

ROOT = Path(__file__).resolve().parent.parent
EXTERNAL_ID = {"x": "2244994945", "facebook": "104532118866342",
               "instagram": "17841405822304914", "linkedin": "urn:li:organization:5515715",
               "sandbox": "sandbox-acme"}
IMAGE = ["https://cdn.example.com/launch.jpg"]
THREAD = ["Thread 1/3: what we shipped", "Thread 2/3: the queue", "Thread 3/3: what is next"]


class Scene:
    """A company with the API on the test database, the fakes, and a worker whose clock a test
    moves on (scheduled posts become due, retries' backoffs pass, claims go stale)."""

    def __init__(self, db, fakes):
        company, key = create_company(db.sessions, "Acme", T0)
        self.db, self.fakes, self.company_id = db, fakes, company.id
        self.api = ApiClient(db, key)
        self.settings = replace(db.settings, x_api_base_url=fakes.x.base_url,
                                graph_api_base_url=fakes.graph.base_url,
                                linkedin_api_base_url=fakes.linkedin.base_url,
                                http_read_timeout=0.5, instagram_poll_interval=0.01,
                                retry_backoff=60)
        self.offset = timedelta(minutes=1)

    def clock(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def account(self, platform: str) -> str:
        return add_account(self.db.sessions, self.company_id, platform, EXTERNAL_ID[platform],
                           f"{platform}-token-5Tq8", T0, display_name=f"Acme on {platform}").id

    def schedule(self, account_id: str, content: str, expect: int = 201, **fields):
        when = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
        response = self.api.post("/schedule-post", json={
            "socialAccountId": account_id, "content": content, "scheduledAt": when, **fields})
        assert response.status_code == expect, response.get_json()
        body = response.get_json()
        return body["posts"][0]["id"] if expect == 201 else body["error"]

    def run(self, advance: timedelta = timedelta(0)):
        self.offset += advance
        return Worker(self.settings, self.db.sessions, clock=self.clock).run()

    def post(self, post_id: str) -> dict:
        response = self.api.get(f"/scheduled-posts/{post_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def kept(self, post_id: str) -> dict[int, str]:
        with self.db.sessions() as session:
            return {p.position: p.platform_post_id for p in session.scalars(
                select(PostPart).where(PostPart.post_detail_id == post_id))}


@pytest.fixture
def scene(request):
    db = request.getfixturevalue("db" if "db" in request.fixturenames else "sqlite")
    with running_fakes() as fakes:
        scene = Scene(db, fakes)
        yield scene
        scene.api.close()


def tweets_sent(fakes) -> Counter:
    """How many times each text was POSTed to X (refused or not)."""
    return Counter(r.json["text"] for r in fakes.x.requests("POST", "/2/tweets"))


def chain(fakes) -> list[tuple[str, str | None]]:
    """X's tweets as (text, the text of the tweet it replies to)."""
    by_id = {t["id"]: t for t in fakes.x.tweets}
    return [(t["text"], by_id[t["in_reply_to"]]["text"] if t.get("in_reply_to") else None)
            for t in fakes.x.tweets]


# -- X threads, resumed ----------------------------------------------------------------------

def test_an_x_thread_failing_on_its_second_part_resumes_there_without_reposting(db, scene):
    post_id = scene.schedule(scene.account("x"), THREAD[0], parts=THREAD[1:])
    scene.fakes.x.fail_next("retryable", match="POST /2/tweets", after=1)  # 503 on part 2
    assert scene.run().retried == 1
    first = scene.post(post_id)
    assert (first["status"], first["queueStatus"]) == ("pending", "pending")
    attempt = first["attemptHistory"][0]
    assert (attempt["outcome"], attempt["httpStatus"]) == ("retry", 503)
    assert attempt["errorMessage"].startswith("part 2 of 3: X refused the request (HTTP 503")
    assert [p["part"] for p in first["publishedParts"]] == [0]

    assert scene.run(advance=timedelta(seconds=61)).published == 1
    assert tweets_sent(scene.fakes) == {THREAD[0]: 1, THREAD[1]: 2, THREAD[2]: 1}
    assert chain(scene.fakes) == [(THREAD[0], None), (THREAD[1], THREAD[0]),
                                  (THREAD[2], THREAD[1])]
    done = scene.post(post_id)
    ids = [t["id"] for t in scene.fakes.x.tweets]
    assert (done["status"], done["platformPostId"]) == ("published", ids[0])
    assert [(p["part"], p["kind"], p["platformPostId"]) for p in done["publishedParts"]] == [
        (0, "post", ids[0]), (1, "reply", ids[1]), (2, "reply", ids[2])]
    assert [a["outcome"] for a in done["attemptHistory"]] == ["retry", "published"]


def start_worker(db, fakes) -> subprocess.Popen:
    """A worker process as cron starts it: settings only from the environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCHEDULER_") and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": db.url, "SCHEDULER_WORKER_ID": "doomed", **fakes.env(),
                "SCHEDULER_HTTP_READ_TIMEOUT": "20"})
    return subprocess.Popen([sys.executable, str(ROOT / "worker_trigger.py")], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.timeout(90)
def test_a_worker_killed_between_parts_resumes_after_the_last_kept_part(db, scene):
    """The worker is SIGKILLed while X holds back its answer to part 2 (X posted it): the
    next run recovers the claim, finds part 2 on X, and posts only part 3."""
    post_id = scene.schedule(scene.account("x"), THREAD[0], parts=THREAD[1:])
    with db.sessions.begin() as session:  # due by the real clock: the process knows no other
        session.execute(update(PostSchedule).where(PostSchedule.post_detail_id == post_id)
                        .values(run_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    scene.fakes.x.fail_next("timeout", match="POST /2/tweets", after=1, hang=30)
    worker = start_worker(db, scene.fakes)
    try:
        deadline = time.monotonic() + 30
        while len(scene.fakes.x.requests("POST", "/2/tweets")) < 2:
            assert time.monotonic() < deadline and worker.poll() is None, "part 2 never sent"
            time.sleep(0.05)
        assert len(scene.fakes.x.tweets) == 2  # X has part 2; its answer is held back
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert scene.kept(post_id) == {0: scene.fakes.x.tweets[0]["id"]}

    summary = scene.run(advance=timedelta(seconds=db.settings.lock_timeout + 60))
    assert (summary.recovered, summary.published) == (1, 1)
    assert tweets_sent(scene.fakes) == {text: 1 for text in THREAD}  # nothing posted twice
    assert chain(scene.fakes)[2] == (THREAD[2], THREAD[1])
    done = scene.post(post_id)
    assert [a["outcome"] for a in done["attemptHistory"]] == ["unknown", "published"]
    last = done["attemptHistory"][1]
    assert last["errorCode"] == "found_existing" and "part 2 of 3 found on x" in last["errorMessage"]
    assert len(done["publishedParts"]) == 3 and done["status"] == "published"


# -- first comments -------------------------------------------------------------------------

def test_a_linkedin_first_comment_is_the_authors_comment_on_the_post(scene):
    post_id = scene.schedule(scene.account("linkedin"), "We are hiring",
                             firstComment="Apply at https://example.com/jobs")
    assert scene.run().published == 1
    (post,) = scene.fakes.linkedin.posts
    (request,) = scene.fakes.linkedin.requests("POST", "/comments")
    assert request.path == f"/rest/socialActions/{post['id'].replace(':', '%3A')}/comments"
    assert request.headers["linkedin-version"] and request.json == {
        "actor": EXTERNAL_ID["linkedin"], "object": post["id"],
        "message": {"text": "Apply at https://example.com/jobs"}}
    done = scene.post(post_id)
    (comment,) = scene.fakes.linkedin.comments
    assert done["platformPostId"] == post["id"] and done["firstComment"].startswith("Apply")
    assert [(p["kind"], p["platformPostId"]) for p in done["publishedParts"]] == [
        ("post", post["id"]), ("comment", comment["commentUrn"])]


@pytest.mark.parametrize("platform", ["facebook", "instagram"])
def test_a_meta_first_comment_goes_to_the_comments_edge_of_the_published_post(scene, platform):
    post_id = scene.schedule(scene.account(platform), "Launch day", firstComment="Link in bio",
                             mediaUrls=IMAGE if platform == "instagram" else [])
    assert scene.run().published == 1
    done = scene.post(post_id)
    (request,) = scene.fakes.graph.requests("POST", "/comments")
    assert request.path == f"/v25.0/{done['platformPostId']}/comments"
    assert request.form["message"] == "Link in bio"
    assert request.form["access_token"] == f"{platform}-token-5Tq8"
    assert [p["kind"] for p in done["publishedParts"]] == ["post", "comment"]


def test_an_x_first_comment_replies_to_the_first_part_of_the_thread(scene):
    scene.schedule(scene.account("x"), THREAD[0], parts=THREAD[1:2],
                   firstComment="The link: https://example.com")
    assert scene.run().published == 1
    assert chain(scene.fakes) == [(THREAD[0], None), (THREAD[1], THREAD[0]),
                                  ("The link: https://example.com", THREAD[0])]


@pytest.mark.parametrize("platform", ["linkedin", "facebook", "instagram"])
def test_a_first_comment_whose_answer_was_lost_is_found_not_posted_twice(scene, platform):
    post_id = scene.schedule(scene.account(platform), "Launch day", firstComment="More inside",
                             mediaUrls=IMAGE if platform == "instagram" else [])
    fake = scene.fakes.linkedin if platform == "linkedin" else scene.fakes.graph
    fake.fail_next("timeout", match="/comments", hang=1.5)  # posted, the answer comes too late
    assert scene.run().retried == 1
    first = scene.post(post_id)["attemptHistory"][0]
    assert first["errorMessage"].startswith("the first comment: ")
    assert scene.run(advance=timedelta(seconds=61)).published == 1
    assert len(fake.requests("POST", "/comments")) == 1 and len(fake.comments) == 1
    last = scene.post(post_id)["attemptHistory"][1]
    assert last["errorCode"] == "found_existing" and "the first comment found" in last["errorMessage"]
    assert len(fake.requests("POST", "/rest/posts" if platform == "linkedin" else "/feed")
               or fake.requests("POST", "/media_publish")) == 1  # the post itself: once


def test_a_refused_first_comment_fails_the_post_and_says_the_post_itself_is_out(scene):
    post_id = scene.schedule(scene.account("linkedin"), "We are hiring", firstComment="Apply")
    scene.fakes.linkedin.fail_next("permanent", match="/comments")
    assert scene.run().failed == 1
    done = scene.post(post_id)
    assert done["status"] == "failed" and done["errorMessage"].startswith("the first comment: ")
    assert "the step before it stays published, never posted again" in done["errorMessage"]
    assert [p["kind"] for p in done["publishedParts"]] == ["post"]
    # Retried by hand: the comment only.
    assert scene.api.post(f"/scheduled-posts/{post_id}/retry").status_code == 200
    assert scene.run(advance=timedelta(seconds=1)).published == 1
    assert len(scene.fakes.linkedin.posts) == 1 and len(scene.fakes.linkedin.comments) == 1


# -- the claim fences each part --------------------------------------------------------------

def test_a_part_is_kept_only_while_the_claim_is_ours(db, scene):
    post_id = scene.schedule(scene.account("sandbox"), "One", parts=["Two"])
    (job,) = queue.claim_due(db.sessions, scene.clock(), 1, "first")
    assert queue.save_part(db.sessions, job, 0, "id-0", scene.clock())
    later = scene.clock() + timedelta(seconds=db.settings.lock_timeout + 1)
    assert queue.recover_stale(db.sessions, later, db.settings.lock_timeout) == 1
    (again,) = queue.claim_due(db.sessions, later, 1, "second")
    assert not queue.save_part(db.sessions, job, 1, "id-1", later)  # the old claim: refused
    assert scene.kept(post_id) == {0: "id-0"}
    assert queue.save_part(db.sessions, again, 1, "id-1", later)
    assert scene.kept(post_id) == {0: "id-0", 1: "id-1"}


def test_a_sandbox_thread_publishes_every_part_and_a_failing_part_names_itself(scene):
    account = scene.account("sandbox")
    ok = scene.schedule(account, "One", parts=["Two", "Three"], firstComment="Four")
    bad = scene.schedule(account, "Uno", parts=["Dos #sandbox-fail"])
    summary = scene.run()
    assert (summary.published, summary.failed) == (1, 1)
    assert [p["kind"] for p in scene.post(ok)["publishedParts"]] == [
        "post", "reply", "reply", "comment"]
    assert scene.post(bad)["errorMessage"].startswith("part 2 of 2: sandbox: simulated rejection")


# -- at schedule time ------------------------------------------------------------------------

@pytest.mark.parametrize("platform", ["linkedin", "facebook", "instagram"])
def test_platforms_without_threads_refuse_parts_with_a_422(scene, platform):
    error = scene.schedule(scene.account(platform), "One", expect=422, parts=["Two"],
                           mediaUrls=IMAGE if platform == "instagram" else [])
    assert "has no threads" in error["fields"]["parts"]
    assert "schedule the parts as separate posts" in error["message"]


@pytest.mark.parametrize("field, value, problem", [
    ("parts", ["ok", "x" * 281], ("parts[1]", "is 281 characters")),
    ("parts", ["ok", "   "], ("parts[1]", "must not be empty")),
    ("parts", ["p"] * 25, ("parts", "at most 24")),
    ("firstComment", "y" * 281, ("firstComment", "is 281 characters")),
])
def test_x_checks_each_part_and_the_first_comment_against_its_limits(scene, field, value, problem):
    error = scene.schedule(scene.account("x"), "One", expect=422, **{field: value})
    name, why = problem
    assert why in error["fields"][name], error


def test_linkedin_first_comment_is_at_most_1250_characters(scene):
    account = scene.account("linkedin")
    error = scene.schedule(account, "Post", expect=422, firstComment="c" * 1251)
    assert "LinkedIn allows at most 1250" in error["fields"]["firstComment"]
    scene.schedule(account, "Post", firstComment="c" * 1250)


def test_parts_and_the_first_comment_can_be_edited_until_a_part_is_out(scene):
    account = scene.account("x")
    post_id = scene.schedule(account, THREAD[0], parts=THREAD[1:], firstComment="More")
    edited = scene.api.patch(f"/scheduled-posts/{post_id}",
                             json={"parts": ["Only one more"], "firstComment": ""}).get_json()
    assert (edited["parts"], edited["firstComment"]) == (["Only one more"], None)
    too_long = scene.api.patch(f"/scheduled-posts/{post_id}", json={"parts": ["z" * 300]})
    assert too_long.status_code == 422 and "parts[0]" in too_long.get_json()["error"]["fields"]
    scene.fakes.x.fail_next("retryable", match="POST /2/tweets", after=1)
    assert scene.run().retried == 1  # the post is out, its reply is not: pending again
    refused = scene.api.patch(f"/scheduled-posts/{post_id}", json={"parts": ["Changed"]})
    assert refused.status_code == 409
    assert "already on x" in refused.get_json()["error"]["message"]
    moved = scene.api.patch(f"/scheduled-posts/{post_id}", json={
        "scheduledAt": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()})
    assert moved.status_code == 200  # its time may still change


def test_the_dashboard_shows_each_part_with_its_platform_id(scene):
    post_id = scene.schedule(scene.account("x"), THREAD[0], parts=THREAD[1:],
                             firstComment="The link")
    scene.fakes.x.fail_next("retryable", match="POST /2/tweets", after=1)
    scene.run()
    browser = scene.api.client
    token = re.search(r'name="csrf" value="([^"]+)"',
                      browser.get("/dashboard").get_data(as_text=True)).group(1)
    browser.post("/dashboard/login", data={"api_key": scene.api.key, "csrf": token},
                 headers={"Origin": "http://localhost"})
    page = browser.get(f"/dashboard/posts/{post_id}").get_data(as_text=True)
    rows = re.findall(r"<tr><td>([^<]*)</td>\s*<td><pre class=\"content\">([^<]*)</pre></td>"
                      r"<td>([^<]*)</td></tr>", page)
    first_id = scene.fakes.x.tweets[0]["id"]
    assert rows == [("1", THREAD[0], first_id), ("2", THREAD[1], "not yet"),
                    ("3", THREAD[2], "not yet"), ("comment", "The link", "not yet")]


def test_facebook_refuses_a_video_with_other_media_when_it_is_scheduled(scene):
    error = scene.schedule(scene.account("facebook"), "Mixed", expect=422, mediaUrls=[
        "https://cdn.example.com/a.jpg", "https://cdn.example.com/b.mp4"])
    assert "one video alone, or photos only" in error["fields"]["mediaUrls"]
    scene.schedule(scene.account("instagram"), "A carousel may mix", mediaUrls=[
        "https://cdn.example.com/a.jpg", "https://cdn.example.com/b.mp4"])
