#!/usr/bin/env python3
"""Queue overhead: how fast the project's workers drain N due `sandbox` posts (no network), next
to a bare PyMySQL (psycopg on PostgreSQL) claim loop draining a same-sized table, same batch size.

Both sides run in 4 processes against the project's schema on the same server, one after the
other. The project's side is `python worker_trigger.py` as cron starts it; the reference does
only SELECT ... FOR UPDATE SKIP LOCKED, UPDATE to processing, COMMIT, UPDATE to done, COMMIT.
Prints one JSON line; target: project rate >= 0.5 x reference rate.
"""
from __future__ import annotations

import contextlib
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings  # noqa: E402
from bench.common import (  # noqa: E402
    BenchDb, CpuClock, bench_database, check_exit_codes, due_now, emit, insert_posts, log_folder,
    make_tenant, note, parser, start_worker, utcnow, verify_published_once, wait_all, worker_env,
)

TARGET_RATIO = 0.5


def reference_loop(db: BenchDb, batch: int) -> int:
    """The least a SKIP LOCKED queue can do per batch: claim, commit, finish, commit."""
    done = 0
    with contextlib.closing(db.connect(autocommit=False)) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"
                    if db.postgresql else "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        while True:
            now = utcnow().replace(tzinfo=None)
            cur.execute("SELECT id FROM post_schedule WHERE status = 'pending' AND run_at <= %s "
                        "ORDER BY run_at, id LIMIT %s FOR UPDATE SKIP LOCKED", (now, batch))
            ids = [row[0] for row in cur.fetchall()]
            if not ids:
                conn.commit()
                return done
            marks = ", ".join(["%s"] * len(ids))
            cur.execute(f"UPDATE post_schedule SET status = 'processing', locked_at = %s, "
                        f"lock_token = %s, attempts = attempts + 1 WHERE id IN ({marks})",
                        (now, uuid.uuid4().hex, *ids))
            conn.commit()
            cur.execute(f"UPDATE post_schedule SET status = 'done', locked_at = NULL, "
                        f"updated_at = %s WHERE id IN ({marks})", (utcnow().replace(tzinfo=None), *ids))
            conn.commit()
            done += len(ids)


def run_project(server_url: str, posts: int, workers: int, batch: int, concurrency: int,
                logs: Path) -> dict:
    with bench_database(server_url, "queue_project") as db:
        company_id, account_id = make_tenant(db, "sandbox")[:2]
        insert_posts(db, company_id, account_id, due_now(posts))
        env = worker_env(db, SCHEDULER_BATCH_SIZE=batch, SCHEDULER_CONCURRENCY=concurrency,
                         SCHEDULER_RUN_BUDGET=3600)  # one run drains it all, however long
        note(f"project: {posts} sandbox posts, {workers} x worker_trigger.py")
        started, cpu = time.monotonic(), CpuClock()
        procs = [start_worker(env, logs / f"worker-{i}.log") for i in range(workers)]
        check_exit_codes(wait_all(procs, timeout=3600), logs)
        seconds, cpu_s = time.monotonic() - started, cpu.used()["children"]
        # The same span as the database saw it: first claim to last outcome, without start-up.
        db_span = float(db.scalar(f"SELECT {db.seconds('MIN(started_at)', 'MAX(finished_at)')} "
                                  "FROM publish_attempts"))
        verified = verify_published_once(db, posts)
    return {"seconds": round(seconds, 2), "posts_per_s": round(posts / seconds, 1),
            "posts_per_s_excluding_startup": round(posts / db_span, 1) if db_span else None,
            "worker_cpu_ms_per_post": round(1000 * cpu_s / posts, 2), "verified": verified}


def run_reference(server_url: str, posts: int, workers: int, batch: int, logs: Path) -> dict:
    import subprocess

    with bench_database(server_url, "queue_reference") as db:
        company_id, account_id = make_tenant(db, "sandbox")[:2]
        insert_posts(db, company_id, account_id, due_now(posts))
        note(f"reference: {posts} rows, {workers} x plain PyMySQL loop, batch {batch}")
        started, cpu = time.monotonic(), CpuClock()
        procs = [subprocess.Popen([sys.executable, __file__, "--reference-worker", db.name,
                                   "--database-url", server_url, "--batch-size", str(batch)],
                                  stdout=open(logs / f"reference-{i}.log", "wb"))
                 for i in range(workers)]
        check_exit_codes(wait_all(procs, timeout=3600), logs)
        seconds, cpu_s = time.monotonic() - started, cpu.used()["children"]
        done = db.scalar("SELECT COUNT(*) FROM post_schedule WHERE status = 'done'")
    return {"seconds": round(seconds, 2), "posts_per_s": round(posts / seconds, 1),
            "worker_cpu_ms_per_post": round(1000 * cpu_s / posts, 2),
            "verified": {"rows": posts, "done": done, "ok": done == posts}}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=50_000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=20, help="SCHEDULER_BATCH_SIZE and the "
                   "reference's LIMIT (default: the project's default, 20)")
    p.add_argument("--concurrency", type=int, default=Settings.concurrency,
                   help=f"SCHEDULER_CONCURRENCY (default: the project's, {Settings.concurrency})")
    p.add_argument("--reference-worker", metavar="DBNAME", help="(internal) run one reference loop")
    args = p.parse_args()
    if args.reference_worker:
        print(reference_loop(BenchDb(args.database_url, args.reference_worker), args.batch_size))
        return
    if args.smoke:
        args.posts = 400
    with log_folder(args.keep_logs, "queue") as logs:
        project = run_project(args.database_url, args.posts, args.workers, args.batch_size,
                              args.concurrency, logs)
        reference = run_reference(args.database_url, args.posts, args.workers, args.batch_size, logs)
    ratio = round(project["posts_per_s"] / reference["posts_per_s"], 3)
    emit({"bench": "queue_overhead", "smoke": args.smoke, "posts": args.posts,
          "workers": args.workers, "batch_size": args.batch_size, "concurrency": args.concurrency,
          "project": project, "reference": reference, "ratio": ratio,
          "target_ratio": TARGET_RATIO, "met": ratio >= TARGET_RATIO,
          "ok": project["verified"]["ok"] and reference["verified"]["ok"]})


if __name__ == "__main__":
    main()
