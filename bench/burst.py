#!/usr/bin/env python3
"""Burst: 10,000 posts on platform `x` all due in the same second, published through the real X
client against the local fake X server (tests/fakes) answering every request 250 ms late.

Workers start as crontab.example starts them (`python worker_trigger.py --loop`, `--processes`
of them each minute while posts remain), with the project's settings unless flags say
otherwise. Reports the drain time, lateness (published_at - run_at) and the workers' peak RSS,
and checks that the fake received exactly one POST /2/tweets per post. Prints one JSON line;
targets: all published within 45 s, p99 <= 40 s, peak RSS <= 150 MB.
"""
from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    CpuClock, PeakRss, bench_database, emit, insert_posts, lateness_seconds, log_folder, make_tenant,
    note, parser, percentiles, run_like_cron, utcnow, verify_published_once, worker_env,
)
from tests.fakes import running_fakes  # noqa: E402

TARGETS = {"drain_s": 45.0, "p99_s": 40.0, "peak_rss_mb": 150.0}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=10_000)
    p.add_argument("--delay", type=float, default=0.25, help="the fake's answer delay, seconds")
    p.add_argument("--processes", type=int, default=1,
                   help="workers cron starts each minute (crontab.example: one line, 1)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="SCHEDULER_CONCURRENCY (default: the project's, 96)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="SCHEDULER_BATCH_SIZE (default: the project's, 20)")
    p.add_argument("--budget", type=float, default=None,
                   help="SCHEDULER_LOOP_BUDGET (default: the project's, 62)")
    p.add_argument("--lead", type=float, default=3.0,
                   help="seconds from the insert to the second the posts fall due")
    args = p.parse_args()
    if args.smoke:
        args.posts, args.budget = 200, args.budget or 6
        args.concurrency = args.concurrency or 32
    settings = {name: value for name, value in (
        ("SCHEDULER_CONCURRENCY", args.concurrency), ("SCHEDULER_BATCH_SIZE", args.batch_size),
        ("SCHEDULER_LOOP_BUDGET", args.budget)) if value is not None}

    with running_fakes(delay=args.delay) as fakes, bench_database(args.database_url, "burst") as db, \
            log_folder(args.keep_logs, "burst") as logs:
        company_id, account_id = make_tenant(db, "x")[:2]
        due = (utcnow() + timedelta(seconds=args.lead)).replace(microsecond=0)
        # Distinct microseconds inside one second, so the claim order is known.
        insert_posts(db, company_id, account_id,
                     [due + timedelta(microseconds=i % 1_000_000) for i in range(args.posts)],
                     content=f"burst {due:%H%M%S}")
        env = {**worker_env(db, **settings), **fakes.env()}
        note(f"{args.posts} x posts due at {due:%H:%M:%S}; {args.processes} x worker_trigger.py "
             f"--loop per minute, {settings or 'project defaults'}; fake X answers in {args.delay} s")
        time.sleep(max(0.0, (due - utcnow()).total_seconds()))  # cron fires at the minute
        rss, cpu = PeakRss(), CpuClock()
        starts = run_like_cron(db, env, logs, processes=args.processes, timeout=3600, rss=rss)
        cpu_used = cpu.used()  # this process: the fake X server (and the bench's polling)
        drain = float(db.scalar(f"SELECT {db.seconds('%s', 'MAX(published_at)')} FROM post_details",
                                (due.replace(tzinfo=None),)))
        verified = verify_published_once(db, args.posts)
        late = lateness_seconds(db)
        tweets = fakes.x.requests("POST", "/2/tweets")
        texts = {r.json["text"] for r in tweets}
    verified.update(fake_x_posts=len(tweets), fake_x_distinct_texts=len(texts))
    verified["ok"] = verified["ok"] and len(tweets) == len(texts) == args.posts
    stats = percentiles(late)
    figures = {"drain_s": round(drain, 2), "p99_s": stats["p99"], "peak_rss_mb": rss.peak_mb}
    emit({"bench": "burst", "smoke": args.smoke, "posts": args.posts, "fake_delay_s": args.delay,
          "processes_per_start": args.processes, "worker_starts": starts,
          "settings": settings or "project defaults", "drain_s": figures["drain_s"],
          "lateness_s": {**stats, "max": round(max(late), 3) if late else None},
          "peak_rss_mb": rss.peak_mb,
          "cpu_s": {"workers": cpu_used["children"], "fake_x_and_bench": cpu_used["this_process"]},
          "targets": TARGETS,
          "met": {k: v is not None and v <= TARGETS[k] for k, v in figures.items()},
          "verified": verified, "ok": verified["ok"]})


if __name__ == "__main__":
    main()
