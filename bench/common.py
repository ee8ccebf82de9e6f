"""What the benchmark scripts share: their command line, a throw-away `bench_*` database with the
project's schema, fast bulk inserts of posts, launching workers the way cron does, and the one
JSON line each script prints.

Every script creates its own database(s) named bench_<script>_<pid>[_suffix] and drops them at
the end, even when it fails, so it never touches anyone else's data. The server is MariaDB/MySQL
or PostgreSQL (--database-url postgresql://...); scale.py's history needs MariaDB.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Sequence

import psycopg
import pymysql
from sqlalchemy.exc import OperationalError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from app.timeutil import utcnow  # the scripts import it from here

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306/"
T_HISTORY = datetime(2026, 1, 1)  # naive UTC, as the columns store it


# -- command line and output ----------------------------------------------------------------

def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes: proves the script and the flow work, in seconds")
    p.add_argument("--database-url",
                   default=os.environ.get("SCHEDULER_BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
                   help="MariaDB or PostgreSQL server URL; the database part is ignored (PostgreSQL: "
                        "the one to log in to first), bench_* databases "
                        "are created and dropped (default: $SCHEDULER_BENCH_DATABASE_URL or "
                        f"{DEFAULT_SERVER_URL})")
    p.add_argument("--keep-logs", metavar="DIR",
                   help="keep the processes' logs in DIR instead of a temporary folder")
    return p


def emit(result: dict) -> None:
    """The script's one line on stdout (everything else goes to stderr)."""
    print(json.dumps(result, default=str), flush=True)


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(values: Sequence[float], points=(50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles, rounded to the millisecond."""
    if not values:
        return {f"p{p}": None for p in points}
    ordered = sorted(values)
    out = {}
    for p in points:
        rank = max(1, -(-p * len(ordered) // 100))  # ceil(p/100 * n)
        out[f"p{p}"] = round(ordered[rank - 1], 3)
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# -- databases ------------------------------------------------------------------------------

class BenchDb:
    """One bench_* database with the project's schema applied (app.migrations.init_schema)."""

    def __init__(self, server_url: str, name: str):
        from app.config import normalize_database_url

        self.name = name
        self.url: URL = normalize_database_url(
            make_url(server_url).set(database=name).render_as_string(hide_password=False))
        self.postgresql = self.url.get_backend_name() == "postgresql"

    @property
    def url_string(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def connect(self, autocommit: bool = True):
        """A plain PyMySQL (or psycopg) connection in UTC, for set-up, checks and the reference
        loops. Both take `%s` placeholders."""
        u = self.url
        if self.postgresql:
            return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username,
                                   password=u.password or None, dbname=self.name,
                                   autocommit=autocommit, options="-c timezone=UTC")
        return pymysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username,
                               password=u.password or "", database=self.name, charset="utf8mb4",
                               autocommit=autocommit, init_command="SET time_zone = '+00:00'")

    def seconds(self, start: str, end: str) -> str:
        """SQL for `end - start` in seconds (a float), on either server."""
        if self.postgresql:
            return f"EXTRACT(EPOCH FROM ({end}) - ({start}))"
        return f"TIMESTAMPDIFF(MICROSECOND, {start}, {end}) / 1e6"

    def scalar(self, sql: str, args=None):
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
            return row[0] if row else None

    def rows(self, sql: str, args=None) -> list[tuple]:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def execute(self, sql: str, args=None) -> int:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.rowcount

    def settings(self, **overrides):
        from app.config import Settings
        return Settings(database_url=self.url_string, **overrides)


@contextlib.contextmanager
def bench_database(server_url: str, label: str) -> Iterator[BenchDb]:
    """Create bench_<label>_<pid>, apply the schema as tests/conftest.py does, drop it at the end."""
    from app.db import make_engine
    from app.migrations import init_schema

    name = f"bench_{label}_{os.getpid()}"
    db = BenchDb(server_url, name)
    if db.postgresql:
        server = create_engine(db.url.set(database=make_url(server_url).database or "postgres"),
                               isolation_level="AUTOCOMMIT")
        create = f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
        drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    else:
        # URL.set() takes database=None as "unchanged": _replace really drops it.
        server = create_engine(db.url._replace(database=None), isolation_level="AUTOCOMMIT")
        create = f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        drop = f"DROP DATABASE IF EXISTS {name}"
    try:
        with server.connect() as conn:
            conn.execute(text(drop))
            conn.execute(text(create))
    except OperationalError as exc:  # one line, not a traceback: the server is the user's to fix
        raise SystemExit(f"bench: cannot create a database on "
                         f"{make_url(server_url).render_as_string(hide_password=True)}: "
                         f"{str(exc.orig).strip()}. Start the server or pass --database-url.") from None
    try:
        engine = make_engine(db.settings())
        init_schema(engine)
        engine.dispose()
        yield db
    finally:
        with server.connect() as conn:
            conn.execute(text(drop))
        server.dispose()


def make_tenant(db: BenchDb, platform: str) -> tuple[str, str, str]:
    """A company with one active account on `platform` (through the services, so the token is
    sealed with the key the worker will use). Returns (company_id, account_id, api_key)."""
    from app.db import make_engine, make_session_factory
    from app.services.accounts import add_account, create_company

    engine = make_engine(db.settings())
    sessions = make_session_factory(engine)
    now = utcnow()
    company, key = create_company(sessions, "Bench", now)
    account = add_account(sessions, company.id, platform, f"bench-{uuid.uuid4().hex[:8]}",
                          "bench-token", now, display_name=f"bench {platform}")
    engine.dispose()
    return company.id, account.id, key


def insert_posts(db: BenchDb, company_id: str, account_id: str, run_ats: Sequence[datetime],
                 content: str = "bench post", chunk: int = 5000) -> None:
    """One pending post (post_details + post_schedule) per run_at, in multi-row INSERTs."""
    created = utcnow().replace(tzinfo=None)
    group = str(uuid.uuid4())
    with contextlib.closing(db.connect(autocommit=False)) as conn, conn.cursor() as cur:
        for start in range(0, len(run_ats), chunk):
            ids = [str(uuid.uuid4()) for _ in run_ats[start:start + chunk]]
            cur.executemany(
                "INSERT INTO post_details (id, company_id, social_account_id, group_id, content, "
                "media_urls, status, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, '[]', 'pending', %s, %s)",
                [(pid, company_id, account_id, group, f"{content} {start + i}", created, created)
                 for i, pid in enumerate(ids)])
            cur.executemany(
                "INSERT INTO post_schedule (post_detail_id, run_at, status, attempts, max_attempts, "
                "deferrals, created_at, updated_at) VALUES (%s, %s, 'pending', 0, 3, 0, %s, %s)",
                [(pid, run_at.astimezone(timezone.utc).replace(tzinfo=None), created, created)
                 for pid, run_at in zip(ids, run_ats[start:start + chunk])])
            conn.commit()


def due_now(count: int, at: datetime | None = None) -> list[datetime]:
    """`count` distinct run_at values, all at or just before `at` (default: now)."""
    at = at or utcnow()
    return [at - timedelta(microseconds=count - i) for i in range(count)]


def insert_history(db: BenchDb, company_id: str, account_id: str, count: int) -> None:
    """`count` finished posts (90 % done, 10 % failed) spread over the past, with one INSERT ...
    SELECT each from MariaDB's sequence engine (seq_1_to_N): a million rows in seconds."""
    if count <= 0:
        return
    if db.postgresql:
        raise SystemExit("bench: the history rows come from MariaDB's sequence engine: "
                         "run this script against MariaDB")
    # Ids are a random prefix + the sequence number, so both INSERTs compute the same ids.
    prefix = str(uuid.uuid4())[:23]
    post_id = f"CONCAT('{prefix}-', LPAD(seq, 12, '0'))"
    with contextlib.closing(db.connect()) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        cur.execute(
            "INSERT INTO post_details (id, company_id, social_account_id, group_id, content, "
            "media_urls, status, platform_post_id, published_at, created_at, updated_at) "
            f"SELECT {post_id}, %s, %s, %s, CONCAT('history ', seq), '[]', "
            "IF(seq %% 10 = 0, 'failed', 'published'), IF(seq %% 10 = 0, NULL, CONCAT('p', seq)), "
            "IF(seq %% 10 = 0, NULL, %s - INTERVAL seq SECOND), "
            f"%s - INTERVAL seq SECOND, %s - INTERVAL seq SECOND FROM seq_1_to_{count}",
            (company_id, account_id, prefix + "-000000000000", T_HISTORY, T_HISTORY, T_HISTORY))
        cur.execute(
            "INSERT INTO post_schedule (post_detail_id, run_at, status, attempts, max_attempts, "
            "deferrals, created_at, updated_at) "
            f"SELECT {post_id}, %s - INTERVAL seq SECOND, IF(seq %% 10 = 0, 'failed', 'done'), "
            "IF(seq %% 10 = 0, 3, 1), 3, 0, %s - INTERVAL seq SECOND, %s - INTERVAL seq SECOND "
            f"FROM seq_1_to_{count}", (T_HISTORY, T_HISTORY, T_HISTORY))
        cur.execute("ANALYZE TABLE post_details, post_schedule")
        cur.fetchall()


# -- processes ------------------------------------------------------------------------------

def worker_env(db: BenchDb, **settings: object) -> dict[str, str]:
    """The environment a cron line gives the worker: DATABASE_URL plus SCHEDULER_* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SCHEDULER_", "X_API", "GRAPH_API", "LINKEDIN_"))}
    env["DATABASE_URL"] = db.url_string
    env["PYTHONPATH"] = str(ROOT)
    for key, value in settings.items():
        env[key] = str(value)
    return env


def start_worker(env: dict[str, str], log_path: Path, loop: bool = False) -> subprocess.Popen:
    """`python worker_trigger.py [--loop]` from the checkout, as crontab.example runs it, its
    JSON log lines appended to `log_path` (as cron's `>> worker.log 2>&1`)."""
    args = [sys.executable, str(ROOT / "worker_trigger.py")] + (["--loop"] if loop else [])
    log = open(log_path, "ab")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


class PeakRss:
    """Samples VmHWM (peak resident set) of the given processes while they run."""

    def __init__(self):
        self.peak_kb: dict[int, int] = {}

    def sample(self, procs: Sequence[subprocess.Popen]) -> None:
        for proc in procs:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    kb = int(line.split()[1])
                    self.peak_kb[proc.pid] = max(kb, self.peak_kb.get(proc.pid, 0))

    @property
    def peak_mb(self) -> float | None:
        return round(max(self.peak_kb.values()) / 1024, 1) if self.peak_kb else None


def wait_all(procs: Sequence[subprocess.Popen], timeout: float, rss: PeakRss | None = None,
             interval: float = 0.2) -> list[int]:
    """Wait for every process (sampling their RSS); kill them all past `timeout`."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs):
        if rss is not None:
            rss.sample(procs)
        if time.monotonic() > deadline:
            stop_all(procs)
            raise TimeoutError(f"worker processes still running after {timeout:.0f} s")
        time.sleep(interval)
    return [p.returncode for p in procs]


def stop_all(procs: Sequence[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_exit_codes(codes: Sequence[int], log_dir: Path) -> None:
    if any(codes):
        raise RuntimeError(f"a worker exited with {list(codes)}; see the logs in {log_dir}")


@contextlib.contextmanager
def log_folder(keep: str | None, label: str) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    import tempfile
    with tempfile.TemporaryDirectory(prefix=f"bench_{label}_") as tmp:
        yield Path(tmp)


# -- checks ---------------------------------------------------------------------------------

def verify_published_once(db: BenchDb, expected: int) -> dict:
    """Every post published exactly once: post_details published, post_schedule done, one
    publish_attempts row per schedule row and it says published, worker_runs adding up."""
    checks = {
        "posts": db.scalar("SELECT COUNT(*) FROM post_details"),
        "details_published": db.scalar(
            "SELECT COUNT(*) FROM post_details WHERE status = 'published' AND published_at IS NOT NULL"),
        "schedule_done": db.scalar("SELECT COUNT(*) FROM post_schedule WHERE status = 'done'"),
        "attempt_rows": db.scalar("SELECT COUNT(*) FROM publish_attempts"),
        "schedules_with_one_published_attempt": db.scalar(
            "SELECT COUNT(*) FROM (SELECT post_schedule_id FROM publish_attempts GROUP BY "
            "post_schedule_id HAVING COUNT(*) = 1 "
            "AND SUM(CASE WHEN outcome = 'published' THEN 1 ELSE 0 END) = 1) t"),
        "worker_runs_published": int(db.scalar(
            "SELECT COALESCE(SUM(published), 0) FROM worker_runs") or 0),
        "worker_runs_claimed": int(db.scalar("SELECT COALESCE(SUM(claimed), 0) FROM worker_runs") or 0),
    }
    checks["ok"] = all(v == expected for v in checks.values())
    return checks


def lateness_seconds(db: BenchDb) -> list[float]:
    """published_at - run_at for every published post, in seconds."""
    rows = db.rows(f"SELECT {db.seconds('s.run_at', 'd.published_at')} FROM post_schedule s "
                   "JOIN post_details d ON d.id = s.post_detail_id WHERE d.published_at IS NOT NULL")
    return [float(r[0]) for r in rows]


def run_like_cron(db: BenchDb, env: dict[str, str], logs: Path, processes: int = 1,
                  period: float = 60.0, timeout: float = 600.0, loop: bool = True,
                  rss: PeakRss | None = None,
                  unfinished: str = "SELECT COUNT(*) FROM post_schedule WHERE status <> 'done'") -> int:
    """Start `processes` x `worker_trigger.py [--loop]` now and again every `period` seconds
    (cron's minute) while the `unfinished` query counts work left (default: posts not done);
    return once none is left and every worker has exited. Returns how many workers were started."""
    procs: list[subprocess.Popen] = []
    last_start = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = db.scalar(unfinished)
            if left == 0 and all(p.poll() is not None for p in procs):
                break
            # Once all is published, cron's next start would find nothing: no need to start it.
            if left and (last_start is None or time.monotonic() - last_start >= period):
                procs += [start_worker(env, logs / f"worker-{len(procs) + i}.log", loop=loop)
                          for i in range(processes)]
                last_start = time.monotonic()
            if rss is not None:
                rss.sample(procs)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{left} posts (or jobs) still not done after {timeout:.0f} s; "
                                   f"see the worker logs in {logs}")
            time.sleep(0.2)
    finally:
        stop_all(procs)
    check_exit_codes([p.returncode for p in procs], logs)
    return len(procs)


class CpuClock:
    """CPU seconds (user + system) used by this process and by its finished children since
    `start()`: where the time of a CPU-bound run went (the database server's is not counted)."""

    def __init__(self):
        self.start()

    def start(self) -> None:
        self._self, self._children = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        import resource
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime

    def used(self) -> dict[str, float]:
        me, kids = self._now()
        return {"this_process": round(me - self._self, 2), "children": round(kids - self._children, 2)}
