#!/usr/bin/env python3
"""Jobs lateness: 2,000 `x` posts due in the same second, published against the fake X (250 ms
an answer) by `worker_trigger.py --loop` as cron starts it, once alone and once with 2,000
`refresh_token` jobs due in that same second (2,000 X accounts whose tokens the fake's token
endpoint refreshes, 250 ms an answer too).

Publishing is claimed first and jobs only take the capacity it leaves, so the posts' lateness
(published_at - run_at) with the jobs must not be worse than without them. Prints one JSON line;
target: p99 with jobs <= 1.10 x p99 without (the margin is the noise between two runs on a
shared machine), and every job done with exactly one refresh request each.
"""
from __future__ import annotations

import contextlib
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    bench_database, emit, insert_posts, lateness_seconds, log_folder, make_tenant, note, parser,
    percentiles, run_like_cron, utcnow, verify_published_once, worker_env,
)
from tests.fakes import running_fakes  # noqa: E402

TARGET_RATIO = 1.10


def unfinished(due) -> str:
    """Work left: posts not done, and the jobs due at `due` (not the refreshes they queue for
    the new tokens, an hour and a half later)."""
    return ("SELECT (SELECT COUNT(*) FROM post_schedule WHERE status <> 'done') + (SELECT COUNT(*) "
            "FROM jobs WHERE kind = 'refresh_token' AND status <> 'done' AND run_at <= "
            f"'{due + timedelta(minutes=1):%Y-%m-%d %H:%M:%S}')")


def insert_refresh_jobs(db, fakes, company_id: str, count: int, due) -> None:
    """`count` X accounts holding tokens the fake issued, each with a refresh_token job due at
    `due` for a token expiring 10 minutes later (what schedule_refresh queues)."""
    from app import crypto

    now = utcnow().replace(tzinfo=None)
    expires = (due + timedelta(minutes=10)).replace(tzinfo=None)
    accounts, jobs = [], []
    for i in range(count):
        access, refresh = fakes.x.give_tokens(600)
        account_id = str(uuid.uuid4())
        accounts.append((account_id, company_id, f"bench-refresh-{i}", crypto.seal(access),
                         crypto.seal(refresh), expires, now, now))
        payload = {"accountId": account_id, "expiresAt": f"{expires.isoformat()}+00:00"}
        jobs.append((json.dumps(payload), company_id, due.replace(tzinfo=None),
                     f"refresh:{account_id}:{payload['expiresAt']}", now, now))
    with contextlib.closing(db.connect(autocommit=False)) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO social_accounts (id, company_id, platform, external_id, "
            "access_token_encrypted, refresh_token_encrypted, token_expires_at, status, "
            "created_at, updated_at) VALUES (%s, %s, 'x', %s, %s, %s, %s, 'active', %s, %s)", accounts)
        cur.executemany(
            "INSERT INTO jobs (kind, payload, company_id, run_at, status, attempts, max_attempts, "
            "dedupe_key, created_at, updated_at) "
            "VALUES ('refresh_token', %s, %s, %s, 'pending', 0, 3, %s, %s, %s)", jobs)
        conn.commit()


def one_run(args, label: str, jobs: int, settings: dict, logs: Path) -> dict:
    with running_fakes(delay=args.delay) as fakes, \
            bench_database(args.database_url, f"jobs_{label}") as db:
        company_id, account_id = make_tenant(db, "x")[:2]
        due = (utcnow() + timedelta(seconds=args.lead)).replace(microsecond=0)
        insert_posts(db, company_id, account_id,
                     [due + timedelta(microseconds=i) for i in range(args.posts)],
                     content=f"lateness {label}")
        if jobs:
            insert_refresh_jobs(db, fakes, company_id, jobs, due)
        env = {**worker_env(db, **settings), **fakes.env()}
        note(f"{label}: {args.posts} x posts and {jobs} refresh_token jobs due at {due:%H:%M:%S}")
        (logs / label).mkdir()
        # The worker is up and polling before they fall due, so its start-up (a second or two
        # of imports on a loaded machine) is not in the lateness.
        starts = run_like_cron(db, env, logs / label, timeout=3600, unfinished=unfinished(due))
        verified = verify_published_once(db, args.posts)
        late = lateness_seconds(db)
        done = db.scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'refresh_token' AND status = 'done'")
        refreshes = len(fakes.x.refreshes())
    verified.update(jobs_done=done, refresh_requests=refreshes)
    verified["ok"] = verified["ok"] and done == jobs == refreshes
    return {"lateness_s": {**percentiles(late), "max": round(max(late), 3)},
            "worker_starts": starts, "verified": verified}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--delay", type=float, default=0.25, help="the fake's answer delay, seconds")
    p.add_argument("--budget", type=float, default=None,
                   help="SCHEDULER_LOOP_BUDGET (default: the project's, 62)")
    p.add_argument("--lead", type=float, default=4.0,
                   help="seconds from the insert (and the worker's start) to the second "
                        "everything falls due")
    p.add_argument("--rounds", type=int, default=2,
                   help="pairs of runs, in the order alone, with jobs, with jobs, alone, ...")
    args = p.parse_args()
    if args.smoke:
        args.posts, args.jobs, args.budget = 100, 100, 12
        args.rounds = 1
    # A --loop worker polling every 0.1 s: lateness is the queue's, not the poll interval's.
    settings = {"SCHEDULER_POLL_INTERVAL": 0.1,
                **({"SCHEDULER_LOOP_BUDGET": args.budget} if args.budget else {})}
    runs: dict[str, list[dict]] = {"alone": [], "with_jobs": []}
    with log_folder(args.keep_logs, "jobs_lateness") as logs:
        for n in range(args.rounds):
            order = ("alone", "with_jobs") if n % 2 == 0 else ("with_jobs", "alone")
            for label in order:
                jobs = args.jobs if label == "with_jobs" else 0
                runs[label].append(one_run(args, f"{label}_{n}", jobs, settings, logs))
    mean = {label: {point: round(sum(r["lateness_s"][point] for r in rs) / len(rs), 3)
                    for point in ("p50", "p95", "p99", "max")} for label, rs in runs.items()}
    ratio = round(mean["with_jobs"]["p99"] / mean["alone"]["p99"], 3)
    emit({"bench": "jobs_lateness", "smoke": args.smoke, "posts": args.posts, "jobs": args.jobs,
          "fake_delay_s": args.delay, "rounds": args.rounds, "settings": settings,
          "mean_lateness_s": mean, "runs": runs, "p99_ratio": ratio,
          "target_ratio": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
          "ok": all(r["verified"]["ok"] for rs in runs.values() for r in rs)})


if __name__ == "__main__":
    main()
