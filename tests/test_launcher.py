"""`worker_trigger.py`, the launcher cron calls, run as a real process: its exit codes, its one
stderr line on failure, its summary line on success, on SQLite and on real MariaDB and
PostgreSQL servers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from conftest import (
    MARIADB, POSTGRESQL, add_due_posts, create_database, drop_database, reachable_server,
)

ROOT = Path(__file__).resolve().parent.parent
TRIGGER = ROOT / "worker_trigger.py"


def trigger(database_url: str, *args: str, timeout: float = 60, **settings: str):
    """Run the launcher the way cron does: its own process, settings only from the environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCHEDULER_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=database_url, SCHEDULER_WORKER_ID="launcher-test", **settings)
    return subprocess.run([sys.executable, str(TRIGGER), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(proc, exit_code: int) -> str:
    """The failure contract: the exit code, exactly one `error: ...` line on stderr, no traceback."""
    assert proc.returncode == exit_code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def summary_of(proc) -> dict:
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    runs = [e for e in events if e.get("event") == "worker_run"]
    assert len(runs) == 1, proc.stderr
    return runs[0]


def just_due() -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=1)


def statuses(db, ids) -> list[tuple[str, int]]:
    """(status, attempts) of each schedule id, in the order given."""
    return [(db.scalar("SELECT status FROM post_schedule WHERE id = :i", i=i),
             db.scalar("SELECT attempts FROM post_schedule WHERE id = :i", i=i)) for i in ids]


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=[MARIADB, POSTGRESQL])
def scratch_database(request):
    """A fresh, empty database on a server: no tables at all. Dropped afterwards."""
    server = reachable_server(request.param)
    name = f"scheduler_empty_{uuid.uuid4().hex[:10]}"
    try:
        yield create_database(server, name)
    finally:
        drop_database(server, name)
        server.dispose()


# -- success -------------------------------------------------------------------------------

def test_publishes_due_posts_on_sqlite(sqlite, tenant):
    due = add_due_posts(sqlite, tenant, 3, run_at=just_due())
    later = add_due_posts(sqlite, tenant, 1, run_at=datetime.now(timezone.utc) + timedelta(days=1))
    proc = trigger(sqlite.url)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = summary_of(proc)
    assert summary["worker_id"] == "launcher-test"
    assert {k: summary[k] for k in ("recovered", "claimed", "published", "retried", "failed",
                                    "deferred", "missed", "lost")} == {
        "recovered": 0, "claimed": 3, "published": 3, "retried": 0, "failed": 0, "deferred": 0,
        "missed": 0, "lost": 0}
    assert statuses(sqlite, due) == [("done", 1)] * 3
    assert statuses(sqlite, later) == [("pending", 0)]
    assert sqlite.scalar("SELECT COUNT(*) FROM post_details WHERE status = 'published'") == 3
    assert sqlite.scalar("SELECT published FROM worker_runs") == 3


def test_publishes_due_posts_on_a_server(server_db, tenant):
    due = add_due_posts(server_db, tenant, 4, run_at=just_due())
    failing = add_due_posts(server_db, tenant, 1, run_at=just_due(), content="#sandbox-fail")
    proc = trigger(server_db.url)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = summary_of(proc)
    assert (summary["claimed"], summary["published"], summary["failed"], summary["retried"]) == (
        5, 4, 1, 0)
    assert statuses(server_db, due) == [("done", 1)] * 4
    assert statuses(server_db, failing) == [("failed", 1)]
    outcomes = {e["schedule_id"]: e["outcome"] for e in
                (json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{"))
                if e.get("event") == "post"}
    assert outcomes == {**{i: "published" for i in due}, failing[0]: "failed"}


def test_nothing_due_is_a_quiet_success(sqlite):
    proc = trigger(sqlite.url)
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(proc)
    assert (summary["claimed"], summary["published"]) == (0, 0)


def test_budget_flag_is_honoured(sqlite, tenant):
    add_due_posts(sqlite, tenant, 2, run_at=just_due())
    proc = trigger(sqlite.url, "--budget", "5")
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc)["published"] == 2


def test_help_documents_the_flags_and_exit_codes():
    proc = trigger("sqlite:///never-opened.db", "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Usage: worker_trigger.py [OPTIONS]")
    for flag in ("--loop", "--budget", "--help"):
        assert flag in out
    for line in ("0  done", "2  the database cannot be reached", "3  the schema is missing",
                 "4  a setting is malformed"):
        assert line in out
    assert not (ROOT / "never-opened.db").exists()


# -- the database cannot be used: exit 2 -----------------------------------------------------

def test_wrong_mariadb_password_is_exit_2_and_claims_nothing(mariadb, tenant):
    due = add_due_posts(mariadb, tenant, 3, run_at=just_due())
    wrong = make_url(mariadb.url).set(password="wrong").render_as_string(hide_password=False)
    line = one_error_line(trigger(wrong), 2)
    assert "database login failed" in line
    assert "check the user and password in DATABASE_URL" in line
    assert "wrong" not in line  # the password is masked
    assert statuses(mariadb, due) == [("pending", 0)] * 3
    assert mariadb.scalar("SELECT COUNT(*) FROM post_schedule WHERE lock_token IS NOT NULL") == 0
    assert mariadb.scalar("SELECT COUNT(*) FROM publish_attempts") == 0
    assert mariadb.scalar("SELECT COUNT(*) FROM worker_runs") == 0


def test_unreachable_host_is_exit_2():
    line = one_error_line(trigger("mysql://root@127.0.0.1:1/scheduler"), 2)
    assert "cannot reach the database" in line
    assert "127.0.0.1:1" in line


def test_unknown_database_is_exit_2(server_db):
    missing = f"scheduler_missing_{uuid.uuid4().hex[:8]}"
    line = one_error_line(trigger(with_database(server_db.url, missing)), 2)
    assert f"database '{missing}' does not exist" in line
    assert "scheduler db init" in line


# -- no schema: exit 3 -----------------------------------------------------------------------

def test_schema_missing_on_a_fresh_sqlite_file_is_exit_3(tmp_path):
    line = one_error_line(trigger(f"sqlite:///{tmp_path / 'empty.db'}"), 3)
    assert "schema is missing" in line
    assert "`scheduler db init`" in line


def test_schema_missing_on_a_fresh_server_database_is_exit_3(scratch_database):
    line = one_error_line(trigger(scratch_database), 3)
    assert "schema is missing" in line
    assert "`scheduler db init`" in line
    # and the launcher created nothing there
    engine = create_engine(scratch_database)
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
    finally:
        engine.dispose()


# -- bad settings: exit 4 --------------------------------------------------------------------

@pytest.mark.parametrize("url,fragment", [
    ("garbage", "DATABASE_URL is not a database URL"),
    ("oracle://u:p@localhost/sched", "DATABASE_URL uses 'oracle'"),
    ("mysql://root@127.0.0.1:3306", "DATABASE_URL names no database"),
])
def test_malformed_database_url_is_exit_4(url, fragment):
    line = one_error_line(trigger(url), 4)
    assert fragment in line


@pytest.mark.parametrize("var,value,fragment", [
    ("SCHEDULER_BATCH_SIZE", "0", "SCHEDULER_BATCH_SIZE must be greater than 0"),
    ("SCHEDULER_LOCK_TIMEOUT", "ten", "SCHEDULER_LOCK_TIMEOUT must be a whole number"),
    ("SCHEDULER_RUN_BUDGET", "nan", "SCHEDULER_RUN_BUDGET must be a finite number"),
])
def test_bad_setting_is_exit_4_naming_it(sqlite, tenant, var, value, fragment):
    due = add_due_posts(sqlite, tenant, 1, run_at=just_due())
    line = one_error_line(trigger(sqlite.url, **{var: value}), 4)
    assert fragment in line
    assert statuses(sqlite, due) == [("pending", 0)]


def test_a_lock_timeout_shorter_than_a_publish_is_exit_4_naming_both(sqlite, tenant):
    due = add_due_posts(sqlite, tenant, 1, run_at=just_due())
    line = one_error_line(trigger(sqlite.url, SCHEDULER_LOCK_TIMEOUT="5"), 4)
    assert "SCHEDULER_LOCK_TIMEOUT (5 s) is too short" in line
    assert "SCHEDULER_HTTP_READ_TIMEOUT" in line
    assert statuses(sqlite, due) == [("pending", 0)]


def test_a_wrong_secret_key_stops_the_run_with_exit_4_and_spends_nothing(mariadb, tenant):
    """Tokens sealed with one key, a worker with another: nothing is sent, nothing is spent."""
    due = add_due_posts(mariadb, tenant, 30, run_at=just_due())
    wrong = Fernet.generate_key().decode()
    proc = trigger(mariadb.url, SCHEDULER_SECRET_KEY=wrong, SCHEDULER_BATCH_SIZE="10",
                   SCHEDULER_CONCURRENCY="4")
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr
    assert "SCHEDULER_SECRET_KEY" in errors[0] and "no attempt spent" in errors[0]
    assert statuses(mariadb, due) == [("pending", 0)] * 30
    assert mariadb.scalar("SELECT COUNT(*) FROM post_schedule WHERE lock_token IS NOT NULL") == 0
    assert mariadb.scalar("SELECT COUNT(*) FROM post_details WHERE status <> 'pending'") == 0
    outcomes = mariadb.rows("SELECT outcome, error_code FROM publish_attempts")
    assert outcomes and {(r["outcome"], r["error_code"]) for r in outcomes} == {
        ("deferred", "secret_key")}
    assert summary_of(proc)["released"] == len(outcomes)
    # With the right key the same posts go out, each on its first attempt.
    proc = trigger(mariadb.url)
    assert proc.returncode == 0, proc.stderr
    assert statuses(mariadb, due) == [("done", 1)] * 30
