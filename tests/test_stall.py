"""Exactly once when a worker stalls: real `worker_trigger.py` processes on MariaDB against the
fake platforms, which record every request they receive. A worker frozen with SIGSTOP past the
lock timeout while another drains the queue must send nothing for the rows it no longer owns
once it is resumed; a publish longer than the lock timeout is kept by its worker's heartbeat;
a database outage mid-run is logged for what it is.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import logging
import threading
from dataclasses import replace

import pytest
from sqlalchemy.engine import make_url

from app.errors import DatabaseUnavailable
from conftest import add_due_posts, make_tenant
from tests.fakes import running_fakes
from tests.fakes.tcp import CuttableProxy
from worker import queue
from worker.publishers.base import PublishResult
from worker.runner import run_worker

ROOT = Path(__file__).resolve().parent.parent
TRIGGER = ROOT / "worker_trigger.py"
# Short on purpose, and consistent: the settings refuse a lock timeout the HTTP timeouts do
# not fit in (2 x (0.5 + 2.5) + 3 x 0.1 + 1 = 7.3 s <= 8 s).
FAST = {"SCHEDULER_LOCK_TIMEOUT": "8", "SCHEDULER_HTTP_CONNECT_TIMEOUT": "0.5",
        "SCHEDULER_HTTP_READ_TIMEOUT": "2.5", "SCHEDULER_INSTAGRAM_POLL_INTERVAL": "0.1",
        "SCHEDULER_INSTAGRAM_POLL_ATTEMPTS": "3"}


def start_worker(db, fakes, name: str, **settings: str) -> subprocess.Popen:
    """A worker process as cron starts it: settings only from the environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCHEDULER_") and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": db.url, "SCHEDULER_WORKER_ID": name, **fakes.env(), **FAST,
                **settings})
    return subprocess.Popen([sys.executable, str(TRIGGER)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finished(proc: subprocess.Popen, timeout: float = 40) -> dict:
    """The run's summary line, once the process ended with exit 0."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    runs = [json.loads(line) for line in err.splitlines()
            if line.startswith("{") and '"worker_run"' in line]
    assert len(runs) == 1, err
    return runs[0]


def wait_for(condition, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def duplicates(fake) -> int:
    """Posts the platform received more than once: every POST beyond the first per text."""
    texts = Counter(r.json["text"] for r in fake.requests("POST", "/2/tweets"))
    return sum(n - 1 for n in texts.values())


def due_now() -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=30)


def frozen_worker_run(mariadb, posts: int, **frozen_settings: str) -> tuple[int, dict, dict]:
    """Worker A claims, is frozen past the lock timeout while B drains, then resumes:
    (duplicates on the fake, A's summary, B's summary)."""
    tenant = make_tenant(mariadb, platform="x")
    ids = add_due_posts(mariadb, tenant, posts, run_at=due_now())
    with running_fakes(delay=0.3) as fakes:
        a = start_worker(mariadb, fakes, "frozen", **frozen_settings)
        try:
            wait_for(lambda: fakes.x.requests("POST"), what="worker A's first request")
            a.send_signal(signal.SIGSTOP)
            claimed = mariadb.scalar("SELECT COUNT(*) FROM post_schedule "
                                     "WHERE status = 'processing' AND worker_id = 'frozen'")
            time.sleep(int(FAST["SCHEDULER_LOCK_TIMEOUT"]) + 1.5)
            b = finished(start_worker(mariadb, fakes, "drainer"))
        finally:
            a.send_signal(signal.SIGCONT)
        summary_a = finished(a)
        dup = duplicates(fakes.x)
        print(f"duplicates: {dup} of {posts} posts, {claimed} held by the frozen worker; "
              f"frozen worker {summary_a}; drainer {b}")
        # Not vacuous: the frozen worker held claims, the drainer took them over, and every post
        # is out (or, after a read timeout on this busy machine, due again for a retry).
        assert claimed > 0 and b["recovered"] > 0
        assert mariadb.scalar("SELECT COUNT(*) FROM post_schedule "
                              "WHERE status NOT IN ('done', 'pending')") == 0
        published = {r.json["text"] for r in fakes.x.requests("POST", "/2/tweets")}
        assert len(published) >= mariadb.scalar(
            "SELECT COUNT(*) FROM post_schedule WHERE status = 'done'") > 0.9 * len(ids)
    return dup, summary_a, b


@pytest.mark.timeout(60)
def test_a_frozen_worker_sends_nothing_for_the_claims_it_lost(mariadb):
    dup, a, b = frozen_worker_run(mariadb, 150, SCHEDULER_CONCURRENCY="10",
                                  SCHEDULER_BATCH_SIZE="10")
    assert dup == 0


@pytest.mark.timeout(60)
def test_a_frozen_worker_with_200_rows_in_its_buffer_sends_none_of_them(mariadb):
    dup, a, b = frozen_worker_run(mariadb, 250, SCHEDULER_CONCURRENCY="4",
                                  SCHEDULER_BATCH_SIZE="200")
    assert a["claimed"] >= 200
    assert dup == 0


@pytest.mark.timeout(60)
def test_a_publish_longer_than_the_lock_timeout_is_kept_by_the_heartbeat(mariadb):
    """Instagram's container takes ~14 s to process, the lock timeout is 8 s: recovery, run
    again and again while the worker publishes (what every other worker's run starts with),
    must not take the live worker's row, and the post goes out once."""
    lock_timeout = int(FAST["SCHEDULER_LOCK_TIMEOUT"])
    slow = {"SCHEDULER_HTTP_READ_TIMEOUT": "1.5", "SCHEDULER_INSTAGRAM_POLL_INTERVAL": "0.3",
            "SCHEDULER_INSTAGRAM_POLL_ATTEMPTS": "10"}  # 2 x (0.5 + 1.5) + 10 x 0.3 + 1 = 8 s
    tenant = make_tenant(mariadb, platform="instagram")
    add_due_posts(mariadb, tenant, 1, run_at=due_now())
    with mariadb.engine.begin() as conn:  # Instagram wants media
        conn.exec_driver_sql("UPDATE post_details SET media_urls = '[\"https://example.com/a.jpg\"]'")
    with running_fakes(delay=0.8) as fakes:
        fakes.graph.container_states = ("IN_PROGRESS",) * 9 + ("FINISHED",)
        a = start_worker(mariadb, fakes, "slow", **slow)
        wait_for(lambda: mariadb.scalar("SELECT COUNT(*) FROM post_schedule "
                                        "WHERE status = 'processing'") == 1, what="the claim")
        claimed_at = time.time()
        time.sleep(lock_timeout + 0.5)
        recovered, looked = 0, []
        while not fakes.graph.requests("POST", "media_publish") and a.poll() is None:
            looked.append(time.time())
            recovered += queue.recover_stale(mariadb.sessions, datetime.now(timezone.utc),
                                             lock_timeout)
            time.sleep(0.5)
        summary_a = finished(a)
        (publish,) = fakes.graph.requests("POST", "media_publish")
        # Not vacuous: recovery ran past the lock timeout, before the slow publish ended.
        assert looked and looked[0] - claimed_at > lock_timeout and looked[0] < publish.at, \
            "the publish ended before recovery could run: this run proves nothing"
        assert recovered == 0
        assert (summary_a["published"], summary_a["released"]) == (1, 0)
        assert len(fakes.graph.media) == 1
        assert len(fakes.graph.requests("POST", "/media")) == 2  # one container, one publish
    row = mariadb.rows("SELECT status, attempts FROM post_schedule")[0]
    assert (row["status"], row["attempts"]) == ("done", 1)


def test_a_database_outage_mid_run_is_logged_plainly_and_exits_2(mariadb, caplog):
    """The posts go out, then the database goes away before their outcomes are written: each
    is logged as unrecorded (no traceback, not 'recovered by another worker'), the rows stay
    claimed for recovery, and the run ends with exit 2 saying so."""
    tenant = make_tenant(mariadb)
    ids = add_due_posts(mariadb, tenant, 3, run_at=due_now())
    url = make_url(mariadb.url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 3306)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    published_all = threading.Barrier(3, action=proxy.cut)  # the last publish cuts the line

    class PublishThenOutage:
        platform = "sandbox"

        def publish(self, post, account):
            published_all.wait(timeout=10)
            return PublishResult(f"sandbox-{post.id}")

    settings = replace(mariadb.settings, database_url=through_proxy, concurrency=3, batch_size=3)
    caplog.set_level(logging.INFO, logger="worker")
    with pytest.raises(DatabaseUnavailable) as caught:
        run_worker(settings, publishers={"sandbox": PublishThenOutage()})
    assert caught.value.exit_code == 2
    assert "unreachable during the run" in str(caught.value)
    assert "3 outcomes were not recorded" in str(caught.value)
    posts = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "post"]
    assert [p["outcome"] for p in posts] == ["unrecorded"] * 3
    assert all("database unreachable while recording; the post was published and will be "
               "found by the lookup" in p["error"] for p in posts)
    assert not [r for r in caplog.records if r.exc_info]
    assert "recovered by another worker" not in caplog.text
    # Still claimed: the next run after the lock timeout recovers them and looks first.
    assert mariadb.scalar("SELECT COUNT(*) FROM post_schedule WHERE status = 'processing'") == 3
    assert len(ids) == 3
