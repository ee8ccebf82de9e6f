"""Workers on several hosts: three network namespaces, each a "host" reaching MariaDB and a
fake X only over its own veth link, run cron-like worker runs (`worker_trigger.py`, a new
process each time) against one queue.

1. 3,000 due posts are published exactly once: one POST per post reaches the fake.
2. One host's link is cut mid-run for longer than the lock timeout, then restored: the other
   hosts recover its claims, every post is still POSTed once, the cut host's late writes
   change nothing (fencing), and nothing is left `processing`.

Needs root (CI has it) and `ip` and `socat` (Debian's packages). When a namespace cannot be
made the test fails with the reason: a skipped multi-host test proves nothing. Addresses are
10.213.N.0/30 pairs between the host and its namespaces only; nothing leaves the machine.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from app.models import PostDetail, PostSchedule
from app.services.accounts import add_account, create_company
from tests.fakes import FakeX

pytestmark = [pytest.mark.netns, pytest.mark.mariadb]

ROOT = Path(__file__).resolve().parent.parent
HOSTS = 3
ACCOUNTS = 150           # 20 posts each: an account's recent posts fit one lookup page
POSTS = 3000
DB_PORT, X_PORT = 13306, 18701  # on each link's host-side address, forwarded to 127.0.0.1
LOCK_TIMEOUT = 6         # seconds: short, so a cut host's claims come back within the test
CUT_SECONDS = LOCK_TIMEOUT + 3
# Seconds a scenario may take before it fails. Each takes 20-25 s on a quiet 2-core machine;
# with the load of a shared CI box, a process start alone can take 10-30 s.
DEADLINE = 150


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check)


@dataclass
class Host:
    """A network namespace with a veth link to the host and forwarders on the host's end."""
    index: int
    ns: str
    outside: str        # veth end in the host namespace
    inside: str         # veth end in the namespace
    address: str        # the host-side address the namespace reaches the services on
    forwarders: list[subprocess.Popen] = field(default_factory=list)

    def cut(self) -> None:
        sh("ip", "link", "set", self.outside, "down")

    def restore(self) -> None:
        sh("ip", "link", "set", self.outside, "up")


def _make_host(index: int, tag: str, subnet: int) -> Host:
    host = Host(index, f"sched-{tag}-h{index}", f"sh{tag}{index}", f"sn{tag}{index}",
                f"10.213.{subnet}.1")
    inside_address = f"10.213.{subnet}.2/30"
    sh("ip", "netns", "add", host.ns)
    sh("ip", "link", "add", host.outside, "type", "veth", "peer", "name", host.inside)
    sh("ip", "link", "set", host.inside, "netns", host.ns)
    sh("ip", "addr", "add", f"{host.address}/30", "dev", host.outside)
    sh("ip", "link", "set", host.outside, "up")
    for command in (["ip", "addr", "add", inside_address, "dev", host.inside],
                    ["ip", "link", "set", host.inside, "up"], ["ip", "link", "set", "lo", "up"]):
        sh("ip", "netns", "exec", host.ns, *command)
    return host


def _forward(host: Host, port: int, target_port: int) -> None:
    """socat on the link's host-side address: MariaDB (and the fake) listen on 127.0.0.1 only."""
    proc = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind={host.address},fork,reuseaddr",
         f"TCP:127.0.0.1:{target_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    host.forwarders.append(proc)
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"socat on {host.address}:{port} exited: {proc.stderr.read().decode()}")
        if f"{host.address}:{port}" in sh("ss", "-ltn", check=False).stdout:
            return
        time.sleep(0.05)
    raise RuntimeError(f"socat on {host.address}:{port} did not start listening")


def _remove(hosts: list[Host]) -> None:
    for host in hosts:
        for proc in host.forwarders:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        sh("ip", "netns", "del", host.ns, check=False)        # takes the inside end with it
        sh("ip", "link", "del", host.outside, check=False)    # gone already, unless half made


@pytest.fixture(scope="module")
def fake_x():
    fake = FakeX(host="127.0.0.1").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def hosts(fake_x):
    """Three namespaces with a link each, MariaDB and the fake X forwarded onto every link.
    Removed in the finalizer whatever happened; a failure to make them fails the test."""
    missing = [tool for tool in ("ip", "socat", "ss") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the multi-host test needs {', '.join(missing)}: apt-get install "
                    "iproute2 socat", pytrace=False)
    tag = f"{os.getpid() % 10000:04d}"
    made: list[Host] = []
    try:
        for i in range(HOSTS):
            made.append(_make_host(i + 1, tag, 10 + (os.getpid() % 80) * 3 + i))
            _forward(made[-1], DB_PORT, 3306)
            _forward(made[-1], X_PORT, int(fake_x.base_url.rsplit(":", 1)[1]))
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        _remove(made)
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        pytest.fail(f"cannot make the network namespaces (run as root, with iproute2 and "
                    f"socat): {detail}", pytrace=False)
    yield made
    _remove(made)


class Cron:
    """Each host starts a worker run (a new `worker_trigger.py` process in its namespace) every
    TICK seconds, as cron does every minute, overlapping the last one if it still runs (at most
    OVERLAP at once), until told to stop."""

    TICK, OVERLAP = 1.0, 2

    def __init__(self, hosts: list[Host], database: str, log_dir: Path):
        self.hosts, self.database, self.log_dir = hosts, database, log_dir
        self.stop = threading.Event()
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}  # each run's log, by process id
        self.threads = [threading.Thread(target=self._loop, args=(h,), daemon=True) for h in hosts]

    def env(self, host: Host) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "DATABASE"))}
        return {**keep, "PYTHONPATH": str(ROOT),
                "DATABASE_URL": f"mysql+pymysql://root@{host.address}:{DB_PORT}/{self.database}",
                "X_API_BASE_URL": f"http://{host.address}:{X_PORT}",
                "SCHEDULER_LOCK_TIMEOUT": str(LOCK_TIMEOUT), "SCHEDULER_RETRY_BACKOFF": "1",
                # a publish must fit in the lock timeout: 2 x (0.5 + 1.5) + 1 x 0.5 + 1 = 5.5 s
                "SCHEDULER_HTTP_CONNECT_TIMEOUT": "0.5", "SCHEDULER_HTTP_READ_TIMEOUT": "1.5",
                "SCHEDULER_INSTAGRAM_POLL_ATTEMPTS": "1", "SCHEDULER_INSTAGRAM_POLL_INTERVAL": "0.5",
                "SCHEDULER_RUN_BUDGET": "10", "SCHEDULER_CONCURRENCY": "16",
                "SCHEDULER_RETENTION_DAYS": "0", "SCHEDULER_LOG_LEVEL": "INFO"}

    def _loop(self, host: Host) -> None:
        alive: list[subprocess.Popen] = []
        run = 0
        while not self.stop.is_set():
            alive = [p for p in alive if p.poll() is None]
            if len(alive) < self.OVERLAP:
                run += 1
                env = {**self.env(host), "SCHEDULER_WORKER_ID": f"host{host.index}-run{run}"}
                path = self.log_dir / f"host{host.index}-run{run}.log"
                with open(path, "w") as log:
                    alive.append(subprocess.Popen(
                        ["ip", "netns", "exec", host.ns, sys.executable, "worker_trigger.py"],
                        cwd=ROOT, env=env, stdout=log, stderr=log))
                self.logs[alive[-1].pid] = path
                self.procs.append(alive[-1])
            self.stop.wait(self.TICK)

    def check(self) -> None:
        """A run that ended other than 0 (done) or 2 (database unreachable: the cut) is a
        failure to report at once, with its log, not after the deadline."""
        for proc in list(self.procs):
            if proc.poll() not in (None, 0, 2):
                pytest.fail(f"a worker run exited {proc.returncode}: "
                            f"{self.logs[proc.pid].read_text()[-500:]}", pytrace=False)

    def wait(self, timeout: float = 60) -> None:
        """Stop starting runs and let the last ones finish (their late writes included)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"a worker run did not end within {timeout} s", pytrace=False)

    def __enter__(self) -> "Cron":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.wait()

    def events(self, host_index: int) -> list[dict]:
        lines = []
        for path in self.log_dir.glob(f"host{host_index}-run*.log"):
            for line in path.read_text().splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines


def seed(db) -> dict[str, str]:
    """ACCOUNTS X accounts with POSTS posts due now between them; token by account id."""
    now = datetime.now(timezone.utc)
    company, _ = create_company(db.sessions, "Multi-host", now)
    tokens, details, schedules = {}, [], []
    for a in range(ACCOUNTS):
        account = add_account(db.sessions, company.id, "x", f"x-user-{a}", f"token-{a}", now)
        tokens[account.id] = f"token-{a}"
        for p in range(POSTS // ACCOUNTS):
            post_id = str(uuid.uuid4())
            details.append(dict(id=post_id, company_id=company.id, social_account_id=account.id,
                                group_id=post_id, content=f"post {p} of account {a}",
                                media_urls=[], status="pending", created_at=now, updated_at=now))
            schedules.append(dict(post_detail_id=post_id, run_at=now - timedelta(seconds=1),
                                  status="pending", attempts=0, max_attempts=3, deferrals=0,
                                  created_at=now, updated_at=now))
    with db.engine.begin() as conn:
        for start in range(0, len(details), 1000):
            conn.execute(insert(PostDetail), details[start:start + 1000])
            conn.execute(insert(PostSchedule), schedules[start:start + 1000])
    return tokens


def wait_until(condition, what: str, cron: "Cron", timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        cron.check()
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}", pytrace=False)
        time.sleep(0.2)


def by_status(db) -> dict[str, int]:
    return {r["status"]: r["n"] for r in db.rows(
        "SELECT status, COUNT(*) AS n FROM post_schedule GROUP BY status")}


def check_exactly_once(db, fake_x: FakeX) -> None:
    """Every post done, one POST for each on the fake, and the id recorded is that tweet's."""
    assert by_status(db) == {"done": POSTS}
    posts = Counter((r.token(), r.json["text"]) for r in fake_x.requests("POST", "/2/tweets"))
    twice = {key: n for key, n in posts.items() if n > 1}
    assert not twice, f"{len(twice)} posts reached the platform more than once: {list(twice)[:5]}"
    assert len(posts) == POSTS
    tweet_ids = {(t["token"], t["text"]): t["id"] for t in fake_x.tweets}
    recorded = {r["content"]: r["platform_post_id"] for r in db.rows(
        "SELECT d.content, d.platform_post_id FROM post_details d")}
    assert len(tweet_ids) == POSTS and sorted(recorded.values()) == sorted(tweet_ids.values())


@pytest.fixture
def fresh_fake(fake_x):
    with fake_x._lock:
        fake_x.received.clear()
        fake_x.tweets.clear()
        fake_x._texts.clear()
    return fake_x


def test_three_hosts_publish_3000_posts_exactly_once(hosts, mariadb, fresh_fake, tmp_path):
    seed(mariadb)
    with Cron(hosts, mariadb.engine.url.database, tmp_path) as cron:
        wait_until(lambda: by_status(mariadb).get("done") == POSTS, "all 3,000 posts done", cron)
    check_exactly_once(mariadb, fresh_fake)
    runs_by_host = Counter(r["worker_id"].split("-")[0] for r in mariadb.rows(
        "SELECT DISTINCT worker_id FROM post_schedule"))
    assert set(runs_by_host) == {"host1", "host2", "host3"}  # every host took a share


def test_a_host_cut_off_mid_run_changes_nothing_once_it_is_back(hosts, mariadb, fresh_fake,
                                                                  tmp_path):
    seed(mariadb)
    cut = hosts[2]
    with Cron(hosts, mariadb.engine.url.database, tmp_path) as cron:
        wait_until(lambda: mariadb.scalar(
            "SELECT COUNT(*) FROM post_schedule WHERE status = 'processing' "
            "AND worker_id LIKE 'host3-%'") > 0, "host 3 holding claims", cron)
        cut.cut()
        try:
            time.sleep(CUT_SECONDS)  # past the lock timeout: the others recover its claims
        finally:
            cut.restore()
        wait_until(lambda: by_status(mariadb) == {"done": POSTS}, "all posts done after the cut",
                   cron)
        cron.wait()  # the cut host's runs write what they still had, late
    check_exactly_once(mariadb, fresh_fake)
    assert by_status(mariadb) == {"done": POSTS}  # and the late writes moved nothing back
    # What the cut host reports published is a row it still owns; what it lost, another owns.
    owner = {r["id"]: r["worker_id"] for r in mariadb.rows("SELECT id, worker_id FROM post_schedule")}
    events = [e for e in cron.events(3) if e.get("event") == "post"]
    lost = [e for e in events if e["outcome"] == "lost"]
    for e in events:
        if e["outcome"] == "published":
            assert owner[e["schedule_id"]] == e["worker_id"]
    for e in lost:
        assert owner[e["schedule_id"]] != e["worker_id"]
    recovered = mariadb.scalar("SELECT COUNT(*) FROM publish_attempts WHERE outcome = 'unknown' "
                               "AND worker_id LIKE 'host3-%'")
    assert recovered > 0, "the cut host's claims were never recovered by the others"
