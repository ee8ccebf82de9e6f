"""The benchmark scripts of bench/, each run once at --smoke size against the test MariaDB.

These prove the scripts work and that every post was published exactly once; they never assert
a timing (the figures on a shared 2-core machine are noise at these sizes).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MYSQL_SERVER_URL, reachable_server

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.mariadb


def run_smoke(script: str, *extra: str) -> dict:
    reachable_server().dispose()  # fail with the conftest's message when MariaDB is down
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke",
                           "--database-url", MYSQL_SERVER_URL, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"{script} should print one line, printed: {done.stdout!r}"
    result = json.loads(lines[0])
    assert result["smoke"] is True
    return result


def assert_published_once(verified: dict, posts: int) -> None:
    assert verified["ok"], verified
    for name in ("posts", "details_published", "schedule_done", "attempt_rows",
                 "schedules_with_one_published_attempt", "worker_runs_published"):
        assert verified[name] == posts, (name, verified)


def test_queue_overhead_smoke_mariadb():
    result = run_smoke("queue_overhead.py")
    assert_published_once(result["project"]["verified"], result["posts"])
    assert result["reference"]["verified"]["done"] == result["posts"]
    assert result["ok"]


def test_burst_smoke_mariadb():
    result = run_smoke("burst.py")
    assert_published_once(result["verified"], result["posts"])
    assert result["verified"]["fake_x_posts"] == result["posts"]
    assert result["verified"]["fake_x_distinct_texts"] == result["posts"]
    assert result["peak_rss_mb"] is not None


def test_steady_smoke_mariadb():
    result = run_smoke("steady.py")
    assert_published_once(result["verified"], result["posts"])
    assert result["lateness_s"]["p99"] is not None


def test_media_memory_smoke_mariadb():
    result = run_smoke("media_memory.py")
    assert result["ok"], result
    assert result["bytes_at_fake"] == result["video_bytes"] and result["peak_rss_mb"] > 0


def test_scale_smoke_mariadb():
    result = run_smoke("scale.py")
    assert result["ok"], result
    assert result["large"]["history_rows"] == 10 * result["small"]["history_rows"]
    assert result["small"]["median_ms"] > 0 and result["large"]["median_ms"] > 0


def test_api_load_smoke_mariadb():
    if shutil.which("wrk") is None:  # never a skip: a skipped test proves nothing
        pytest.fail("wrk is not installed: `apt-get install wrk` (Debian's package)", pytrace=False)
    result = run_smoke("api_load.py")
    for side in ("project", "reference"):  # the bare reference is measured in the same run
        verified = result[side]["verified"]
        assert verified["ok"], (side, verified)
        assert verified["accepted_by_wrk"] > 0, side
        assert result[side]["non_2xx"] == 0 and result[side]["socket_errors"] == 0, side
    assert result["ratio"] == round(result["project"]["requests_per_s"]
                                    / result["reference"]["requests_per_s"], 3)
    assert result["ok"]


def test_imports_smoke_mariadb():
    result = run_smoke("imports.py")
    assert result["ok"], result
    assert result["rows"] == 200 and result["median_s"] > 0 and result["reference_median_s"] > 0
def test_jobs_lateness_smoke_mariadb():
    result = run_smoke("jobs_lateness.py")
    for label, runs in result["runs"].items():
        for run in runs:
            assert_published_once(run["verified"], result["posts"])
            jobs = result["jobs"] if label == "with_jobs" else 0
            assert run["verified"]["jobs_done"] == run["verified"]["refresh_requests"] == jobs
    assert result["ok"]
