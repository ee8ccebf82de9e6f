"""The real publishers, end to end through the worker, against the local fakes of
tests/fakes: each platform x (success, auth, rate limited, retryable, permanent, duplicate,
timeout), asserting the queue's outcome and the exact request the platform received."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.models import PostDetail, PostSchedule, PublishAttempt, SocialAccount
from app.services.accounts import add_account, create_company
from tests.fakes import running_fakes
from worker import queue
from worker.cycle import Worker
from worker.publishers.http import USER_AGENT

from conftest import T0, add_due_post

TOKEN = {"x": "x-user-token-7Hq2ZpLk", "facebook": "EAAGpage-token-9vB3xQ",
         "instagram": "EAAGig-token-4mN8sR", "linkedin": "AQVlinkedin-token-2kD5wT",
         "bluesky": "eyJbsky-access-jwt-8dK3", "mastodon": "mastodon-token-Zq81xV",
         "threads": "THAAthreads-token-5pL0"}
EXTERNAL_ID = {"x": "2244994945", "facebook": "104532118866342",
               "instagram": "17841405822304914", "linkedin": "urn:li:organization:5515715",
               "bluesky": "did:plc:acme7x2k4q", "mastodon": "@acme@mastodon.example",
               "threads": "25001"}
CONTENT = {"x": "Launch day: the scheduler ships",
           "facebook": "Launch day https://example.com/launch",
           "instagram": "Behind the scenes #launch",
           "linkedin": "Hiring (again) #jobs | apply *now*",
           "bluesky": "Launch day on Bluesky",
           "mastodon": "Launch day <on> Mastodon & friends",
           "threads": "Launch day on Threads"}
MEDIA = {"instagram": ["https://cdn.example.com/launch.jpg"]}
FAKE = {"x": "x", "facebook": "graph", "instagram": "graph", "linkedin": "linkedin",
        "bluesky": "bluesky", "mastodon": "mastodon", "threads": "threads"}
# The request that publishes, per platform (what a scripted failure hits)
PUBLISHING = {"x": "POST /2/tweets", "facebook": "/feed", "instagram": "/media_publish",
              "linkedin": "POST /rest/posts", "bluesky": "POST /xrpc/com.atproto.repo.createRecord",
              "mastodon": "POST /api/v1/statuses",
              "threads": "POST /v1.0/25001/threads_publish"}
PLATFORMS = tuple(TOKEN)


class Clock:
    """Real time, plus however far a test has moved it on."""

    def __init__(self):
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **kwargs) -> None:
        self.offset += timedelta(**kwargs)


@dataclass
class Rig:
    db: object
    fakes: object
    clock: Clock
    settings: object
    company_id: str

    def fake(self, platform: str):
        return getattr(self.fakes, FAKE[platform])

    def account(self, platform: str) -> str:
        account_id = add_account(self.db.sessions, self.company_id, platform,
                                 EXTERNAL_ID[platform], TOKEN[platform], T0,
                                 display_name=f"Acme on {platform}").id
        if platform == "mastodon":  # what connect keeps: the instance's URL
            with self.db.sessions.begin() as session:
                session.get(SocialAccount, account_id).auth_meta = {
                    "instance": self.fakes.mastodon.base_url,
                    "account_id": self.fakes.mastodon.user["id"]}
        return account_id

    def post(self, account_id: str, platform: str, content: str | None = None) -> int:
        """One post due now; its schedule id."""
        return add_due_post(self.db, self.company_id, account_id, content or CONTENT[platform],
                            self.clock(), MEDIA.get(platform, []))

    def run(self):
        return Worker(self.settings, self.db.sessions, clock=self.clock).run()

    def state(self, schedule_id: int) -> dict:
        s, d = PostSchedule, PostDetail
        with self.db.sessions() as session:
            row = session.execute(
                select(s.status, s.attempts, s.run_at, s.deferrals, s.unknown_since,
                       s.platform_draft_id, d.status.label("post_status"), d.platform_post_id,
                       d.error_message, SocialAccount.status.label("account_status"))
                .join(d, d.id == s.post_detail_id)
                .join(SocialAccount, SocialAccount.id == d.social_account_id)
                .where(s.id == schedule_id)).one()
            attempts = session.execute(
                select(PublishAttempt.outcome, PublishAttempt.http_status,
                       PublishAttempt.error_code, PublishAttempt.error_message)
                .where(PublishAttempt.post_schedule_id == schedule_id)
                .order_by(PublishAttempt.attempt, PublishAttempt.id)).all()
        return {**row._asdict(), "attempts_made": [a._asdict() for a in attempts]}


def make_rig(db, fakes) -> Rig:
    settings = replace(db.settings, x_api_base_url=fakes.x.base_url,
                       graph_api_base_url=fakes.graph.base_url,
                       linkedin_api_base_url=fakes.linkedin.base_url,
                       bluesky_pds_url=fakes.bluesky.base_url,
                       threads_api_base_url=fakes.threads.base_url, http_read_timeout=0.5,
                       instagram_poll_interval=0.01, retry_backoff=60, concurrency=2)
    company, _ = create_company(db.sessions, "Acme", T0)
    fakes.bluesky.access[TOKEN["bluesky"]] = EXTERNAL_ID["bluesky"]  # a live session's token
    fakes.threads.checks_until_finished = 0
    return Rig(db, fakes, Clock(), settings, company.id)


@pytest.fixture
def rig(sqlite):
    with running_fakes() as fakes:
        yield make_rig(sqlite, fakes)


def publish_requests(rig: Rig, platform: str):
    method, _, path = PUBLISHING[platform].rpartition(" ")
    return rig.fake(platform).requests(method or "POST", path)


# -- success: the exact requests --------------------------------------------------------

def published_once(rig: Rig, platform: str):
    """One post published through the worker in one request: its schedule id and the request."""
    sid = rig.post(rig.account(platform), platform)
    assert rig.run().published == 1
    (request,) = rig.fake(platform).received
    return sid, request


def test_x_publishes_with_the_user_token_and_json_text(rig):
    sid, request = published_once(rig, "x")
    assert (request.method, request.path) == ("POST", "/2/tweets")
    assert request.headers["authorization"] == f"Bearer {TOKEN['x']}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("post-scheduler/")
    assert request.json == {"text": CONTENT["x"]}
    state = rig.state(sid)
    assert (state["status"], state["post_status"]) == ("done", "published")
    assert state["platform_post_id"] == rig.fakes.x.tweets[0]["id"]


def test_facebook_publishes_to_the_page_feed_with_message_and_link(rig):
    sid, request = published_once(rig, "facebook")
    page = EXTERNAL_ID["facebook"]
    assert (request.method, request.path) == ("POST", f"/v25.0/{page}/feed")
    assert request.form == {"message": CONTENT["facebook"], "link": "https://example.com/launch",
                            "access_token": TOKEN["facebook"]}
    assert request.query == {}  # the token never travels in a URL
    assert rig.state(sid)["platform_post_id"] == rig.fakes.graph.posts[0]["id"]


def test_facebook_sends_one_photo_to_the_photos_edge(rig):
    account = rig.account("facebook")
    MEDIA["facebook"] = ["https://cdn.example.com/a.jpg"]
    try:
        sid = rig.post(account, "facebook", "A photo")
    finally:
        del MEDIA["facebook"]
    assert rig.run().published == 1
    (request,) = rig.fakes.graph.received
    assert request.path == f"/v25.0/{EXTERNAL_ID['facebook']}/photos"
    assert request.form == {"url": "https://cdn.example.com/a.jpg", "message": "A photo",
                            "access_token": TOKEN["facebook"]}
    assert rig.state(sid)["platform_post_id"] == rig.fakes.graph.posts[0]["id"]


def test_instagram_creates_a_container_waits_for_it_then_publishes_it(rig):
    sid = rig.post(rig.account("instagram"), "instagram")
    assert rig.run().published == 1
    user = EXTERNAL_ID["instagram"]
    create, check1, check2, publish = rig.fakes.graph.received
    assert (create.method, create.path) == ("POST", f"/v25.0/{user}/media")
    assert create.form == {"image_url": MEDIA["instagram"][0], "caption": CONTENT["instagram"],
                           "access_token": TOKEN["instagram"]}
    container = next(iter(rig.fakes.graph.containers))
    for check in (check1, check2):
        assert (check.method, check.path) == ("GET", f"/v25.0/{container}")
        assert check.query == {"fields": "status_code,status"}
        assert check.headers["authorization"] == f"Bearer {TOKEN['instagram']}"
    assert (publish.method, publish.path) == ("POST", f"/v25.0/{user}/media_publish")
    assert publish.form == {"creation_id": container, "access_token": TOKEN["instagram"]}
    state = rig.state(sid)
    assert state["platform_post_id"] == rig.fakes.graph.media[0]["id"]
    assert state["platform_draft_id"] is None  # forgotten once published


def test_instagram_without_media_is_refused_before_any_request(rig):
    account = rig.account("instagram")
    MEDIA["instagram"], saved = [], MEDIA["instagram"]
    try:
        sid = rig.post(account, "instagram")
    finally:
        MEDIA["instagram"] = saved
    assert rig.run().failed == 1
    assert rig.fakes.graph.received == []
    assert "needs an image or a video" in rig.state(sid)["error_message"]


def test_linkedin_posts_with_version_headers_and_escaped_commentary(rig):
    sid, request = published_once(rig, "linkedin")
    assert (request.method, request.path) == ("POST", "/rest/posts")
    assert request.headers["authorization"] == f"Bearer {TOKEN['linkedin']}"
    assert request.headers["linkedin-version"] == "202605"
    assert request.headers["x-restli-protocol-version"] == "2.0.0"
    body = request.json
    assert body["author"] == EXTERNAL_ID["linkedin"]
    assert body["commentary"] == r"Hiring \(again\) #jobs \| apply \*now\*"
    assert body["visibility"] == "PUBLIC" and body["lifecycleState"] == "PUBLISHED"
    assert body["distribution"]["feedDistribution"] == "MAIN_FEED"
    assert rig.state(sid)["platform_post_id"] == rig.fakes.linkedin.posts[0]["id"]
    assert rig.state(sid)["platform_post_id"].startswith("urn:li:share:")


# -- each error class, on each platform -------------------------------------------------

AUTH_STATUS = {"x": 401, "facebook": 400, "instagram": 400, "linkedin": 401, "bluesky": 401,
               "mastodon": 401, "threads": 400}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_auth_fails_the_post_and_the_other_posts_wait_for_a_reconnect(rig, platform):
    account = rig.account(platform)
    first = rig.post(account, platform)
    second = rig.post(account, platform, content=f"{CONTENT[platform]} (second)")
    rig.fake(platform).fail_next("auth", match=PUBLISHING[platform])
    rig.settings = replace(rig.settings, concurrency=1)
    summary = rig.run()
    assert summary.failed == 1
    failed, waiting = rig.state(first), rig.state(second)
    assert (failed["status"], failed["account_status"]) == ("failed", "needs_reconnect")
    assert f"Reconnect the {platform} account" in failed["error_message"]
    assert failed["attempts_made"][0]["http_status"] == AUTH_STATUS[platform]
    assert (waiting["status"], waiting["post_status"], waiting["attempts"]) == (
        "waiting", "pending", 0)
    assert len(publish_requests(rig, platform)) == 1  # the second was never sent


RESET_WAIT = {"x": timedelta(seconds=120), "facebook": timedelta(minutes=3),
              "instagram": timedelta(minutes=3), "linkedin": timedelta(seconds=60),
              "bluesky": timedelta(seconds=300), "mastodon": timedelta(seconds=300),
              "threads": timedelta(seconds=60)}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_rate_limited_defers_to_the_platforms_reset_without_spending_an_attempt(rig, platform):
    sid = rig.post(rig.account(platform), platform)
    rig.fake(platform).fail_next("rate_limited", match=PUBLISHING[platform])
    before = rig.clock()
    assert rig.run().deferred == 1
    state = rig.state(sid)
    assert (state["status"], state["attempts"], state["deferrals"]) == ("pending", 0, 1)
    expected = before + RESET_WAIT[platform]
    assert abs(state["run_at"] - expected) < timedelta(seconds=5)
    assert [a["outcome"] for a in state["attempts_made"]] == ["deferred"]
    rig.clock.advance(seconds=RESET_WAIT[platform].total_seconds() + 1)
    assert rig.run().published == 1
    assert rig.state(sid)["status"] == "done"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_retryable_is_retried_after_the_backoff_and_then_published(rig, platform):
    sid = rig.post(rig.account(platform), platform)
    rig.fake(platform).fail_next("retryable", match=PUBLISHING[platform])
    assert rig.run().retried == 1
    state = rig.state(sid)
    assert (state["status"], state["attempts"]) == ("pending", 1)
    assert state["attempts_made"][0]["outcome"] == "retry"
    assert state["attempts_made"][0]["http_status"] in (500, 502, 503)
    assert state["unknown_since"] is None  # the platform answered: nothing to look for
    rig.clock.advance(seconds=61)
    assert rig.run().published == 1
    assert (rig.state(sid)["status"], rig.state(sid)["attempts"]) == ("done", 2)
    assert len(publish_requests(rig, platform)) == 2


# Bluesky, Mastodon and Threads take the same text twice: they have no duplicate refusal.
@pytest.mark.parametrize("platform,kind", [(p, "permanent") for p in PLATFORMS] + [
    (p, "duplicate") for p in ("x", "facebook", "instagram", "linkedin")])
def test_permanent_fails_at_once_with_the_platforms_message(rig, platform, kind):
    sid = rig.post(rig.account(platform), platform)
    rig.fake(platform).fail_next(kind, match=PUBLISHING[platform])
    assert rig.run().failed == 1
    state = rig.state(sid)
    assert (state["status"], state["post_status"], state["attempts"]) == ("failed", "failed", 1)
    assert state["account_status"] == "active"
    message = state["error_message"].lower()
    assert "refused the request" in message
    assert ("duplicate" in message) if kind == "duplicate" else ("invalid" in message
                                                                 or "exceed" in message)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_timeout_after_the_post_went_through_is_found_not_posted_twice(rig, platform):
    """The platform published but its answer came too late: the next attempt reads the
    account's recent posts, finds it, and records it published with that id."""
    sid = rig.post(rig.account(platform), platform)
    rig.fake(platform).fail_next("timeout", match=PUBLISHING[platform], hang=1.5)
    assert rig.run().retried == 1
    state = rig.state(sid)
    assert state["unknown_since"] is not None
    assert state["attempts_made"][0]["error_code"] == "timeout"
    assert "no answer" in state["attempts_made"][0]["error_message"]
    rig.clock.advance(seconds=61)
    assert rig.run().published == 1
    state = rig.state(sid)
    assert len(publish_requests(rig, platform)) == 1  # never sent twice
    assert state["status"] == "done" and state["unknown_since"] is None
    assert state["attempts_made"][1]["error_code"] == "found_existing"
    assert state["platform_post_id"]


def later_posts(rig: Rig, platform: str, count: int) -> None:
    """`count` posts made on the account after ours (by another tool, or a person)."""
    texts = [f"something else entirely, number {i}" for i in range(count)]
    if platform == "x":
        rig.fakes.x.add_posts(TOKEN["x"], texts)
    elif platform == "linkedin":
        rig.fakes.linkedin.add_posts(EXTERNAL_ID["linkedin"], texts)
    elif platform == "bluesky":
        rig.fakes.bluesky.add_posts(EXTERNAL_ID["bluesky"], texts)
    elif platform == "mastodon":
        rig.fakes.mastodon.add_posts(texts)
    elif platform == "threads":
        rig.fakes.threads.add_threads(EXTERNAL_ID["threads"], count, text="something else")
    else:
        rig.fakes.graph.add_posts(EXTERNAL_ID[platform], texts, instagram=platform == "instagram")


def lookups(rig: Rig, platform: str):
    """The requests that read the account's posts back."""
    return [r for r in rig.fake(platform).requests("GET") if "media" in r.path
            or "posts" in r.path or "tweets" in r.path
            or r.path.endswith(("listRecords", "/statuses", "/threads"))]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_lookup_pages_back_past_200_later_posts(rig, platform):
    """The lost post is under 200 later ones: found on the third page, not posted again."""
    sid = rig.post(rig.account(platform), platform)
    rig.fake(platform).fail_next("timeout", match=PUBLISHING[platform], hang=1.5)
    assert rig.run().retried == 1
    later_posts(rig, platform, 200)
    rig.clock.advance(seconds=61)
    assert rig.run().published == 1
    state = rig.state(sid)
    assert len(publish_requests(rig, platform)) == 1  # never sent twice
    assert state["attempts_made"][1]["error_code"] == "found_existing"
    reads = lookups(rig, platform)
    # 100 per page (Mastodon: 40), newest first: ours is the 201st
    assert len(reads) == (6 if platform == "mastodon" else 3)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_lookup_is_bounded_to_ten_pages(rig, platform):
    """More than 10 pages since the lost attempt: the attempt says not all could be read."""
    sid = rig.post(rig.account(platform), platform)
    rig.fake(platform).fail_next("timeout", match=PUBLISHING[platform], hang=1.5)
    rig.run()
    later_posts(rig, platform, 1001)
    rig.clock.advance(seconds=61)
    rig.run()
    attempt = rig.state(sid)["attempts_made"][1]
    # Posted again, and the record says why (X, Facebook and LinkedIn then refuse the repeat).
    assert "could not look" in attempt["error_message"]
    assert "more than 10 pages" in attempt["error_message"]
    reads = lookups(rig, platform)
    assert len(reads) == 10


# Bluesky's listRecords is public: nothing can refuse this account the read.
@pytest.mark.parametrize("platform", [p for p in PLATFORMS if p != "bluesky"])
def test_when_the_token_cannot_read_back_the_attempt_says_so_and_posts(rig, platform):
    sid = rig.post(rig.account(platform), platform)
    fake = rig.fake(platform)
    fake.fail_next("retryable", match=PUBLISHING[platform])
    rig.run()
    with rig.db.sessions.begin() as session:  # as if that attempt's outcome had been lost
        session.get(PostSchedule, sid).unknown_since = rig.clock() - timedelta(minutes=1)
    fake.reads_allowed = False
    rig.clock.advance(seconds=61)
    assert rig.run().published == 1
    attempt = rig.state(sid)["attempts_made"][1]
    assert attempt["outcome"] == "published" and attempt["error_code"] == "lookup_unavailable"
    assert "could not look" in attempt["error_message"]
    assert rig.state(sid)["account_status"] == "active"


# -- Instagram's container survives a retry -----------------------------------------------

def test_instagram_reuses_the_container_of_an_earlier_attempt(rig):
    sid = rig.post(rig.account("instagram"), "instagram")
    rig.fakes.graph.fail_next("retryable", match="/media_publish")
    assert rig.run().retried == 1
    (container,) = rig.fakes.graph.containers
    assert rig.state(sid)["platform_draft_id"] == container
    rig.clock.advance(seconds=61)
    assert rig.run().published == 1
    creates = rig.fakes.graph.requests("POST", f"{EXTERNAL_ID['instagram']}/media")
    assert len([r for r in creates if r.path.endswith("/media")]) == 1  # one container only
    assert len(rig.fakes.graph.containers) == 1


def test_an_instagram_container_that_errors_fails_the_post(rig):
    rig.fakes.graph.container_states = ("IN_PROGRESS", "ERROR")
    sid = rig.post(rig.account("instagram"), "instagram")
    assert rig.run().failed == 1
    assert "container" in rig.state(sid)["error_message"] and "ERROR" in rig.state(sid)["error_message"]
    assert rig.fakes.graph.requests("POST", "media_publish") == []


def test_an_instagram_container_still_processing_is_deferred_not_failed(rig):
    rig.fakes.graph.container_states = ("IN_PROGRESS",)
    rig.settings = replace(rig.settings, instagram_poll_attempts=3)
    sid = rig.post(rig.account("instagram"), "instagram")
    assert rig.run().deferred == 1
    state = rig.state(sid)
    assert (state["status"], state["attempts"]) == ("pending", 0)
    assert state["platform_draft_id"] == next(iter(rig.fakes.graph.containers))


# -- a worker that died mid-request (MariaDB and SQLite) ------------------------------------

@pytest.mark.parametrize("platform", PLATFORMS)
def test_after_a_crash_the_recovered_post_is_found_on_the_platform_not_reposted(db, platform):
    with running_fakes() as fakes:
        rig = make_rig(db, fakes)
        sid = rig.post(rig.account(platform), platform)
        # A worker claims the post and publishes it, then dies before writing the outcome.
        (job,) = queue.claim_due(db.sessions, rig.clock(), 1, "worker-that-dies")
        worker = Worker(rig.settings, db.sessions, clock=rig.clock)
        (_, post, account), = worker._load([job])
        worker.publishers[platform].publish(post, worker._run.credentials(account))
        assert len(publish_requests(rig, platform)) == 1
        rig.clock.advance(minutes=11)  # past the lock timeout
        summary = rig.run()
        assert (summary.recovered, summary.published) == (1, 1)
        state = rig.state(sid)
        assert len(publish_requests(rig, platform)) == 1  # no duplicate
        assert [a["outcome"] for a in state["attempts_made"]] == ["unknown", "published"]
        assert state["attempts_made"][1]["error_code"] == "found_existing"
        assert state["status"] == "done" and state["post_status"] == "published"


# -- no token in any log line or stored message --------------------------------------------

def test_no_access_token_reaches_a_log_line_or_an_error_message(rig, caplog):
    caplog.set_level(logging.DEBUG)
    ids = []
    for platform in PLATFORMS:
        account = rig.account(platform)
        for kind in ("auth", "rate_limited", "retryable", "permanent", "duplicate", "timeout"):
            rig.fake(platform).fail_next(kind, match=PUBLISHING[platform], hang=1.0,
                                         echo_token=True)
            ids.append(rig.post(account, platform, f"{CONTENT[platform]} {kind}"))
            rig.run()
            with rig.db.sessions.begin() as session:  # reconnected for the next case
                session.get(SocialAccount, account).status = "active"
                for schedule in session.scalars(select(PostSchedule).where(
                        PostSchedule.status == "waiting")):
                    schedule.status = "pending"
    texts = [caplog.text] + [r.getMessage() for r in caplog.records]
    for sid in ids:
        state = rig.state(sid)
        texts += [str(state["error_message"])] + [str(a["error_message"])
                                                  for a in state["attempts_made"]]
    assert len(caplog.records) > 20
    joined = "\n".join(texts)
    for token in TOKEN.values():
        assert token not in joined
    assert "[redacted]" in joined  # a platform that echoed the token back was scrubbed
