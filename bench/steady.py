#!/usr/bin/env python3
"""Steady load: posts falling due at a steady rate (default 50/s for 60 s) on the `sandbox`
platform, picked up by the worker in --loop mode started as crontab.example starts it: a new
`python worker_trigger.py --loop` every minute, each polling for SCHEDULER_LOOP_BUDGET seconds.

The posts are inserted ahead, with run_at spread evenly over the window. Lateness is
post_details.published_at - post_schedule.run_at. Prints one JSON line; target: p99 <= 1.5 s.
"""
from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    bench_database, emit, insert_posts, lateness_seconds, log_folder, make_tenant, note, parser,
    percentiles, run_like_cron, utcnow, verify_published_once, worker_env,
)

TARGET_P99 = 1.5


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=50.0, help="posts falling due per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals")
    p.add_argument("--lead", type=float, default=3.0,
                   help="seconds between the first cron start and the first post's time")
    p.add_argument("--cron-period", type=float, default=60.0,
                   help="seconds between worker starts (cron: every minute)")
    p.add_argument("--budget", type=float, default=None,
                   help="SCHEDULER_LOOP_BUDGET for the --loop workers (default: the project's, 62)")
    args = p.parse_args()
    if args.smoke:
        args.rate, args.duration, args.lead = 20.0, 4.0, 2.0
        args.budget = args.budget or args.lead + args.duration + 2
    count = int(args.rate * args.duration)
    settings = {} if args.budget is None else {"SCHEDULER_LOOP_BUDGET": args.budget}

    with bench_database(args.database_url, "steady") as db, \
            log_folder(args.keep_logs, "steady") as logs:
        company_id, account_id = make_tenant(db, "sandbox")[:2]
        start = utcnow() + timedelta(seconds=args.lead + 1)  # +1: the insert itself
        insert_posts(db, company_id, account_id,
                     [start + timedelta(seconds=i / args.rate) for i in range(count)])
        env = worker_env(db, **settings)
        note(f"{count} posts due from {start:%H:%M:%S} at {args.rate}/s; a worker --loop "
             f"every {args.cron_period:.0f} s")
        starts = run_like_cron(db, env, logs, period=args.cron_period,
                               timeout=args.lead + args.duration + 2 * args.cron_period + 120)
        verified = verify_published_once(db, count)
        late = lateness_seconds(db)
    stats = percentiles(late)
    emit({"bench": "steady", "smoke": args.smoke, "posts": count, "rate_per_s": args.rate,
          "duration_s": args.duration, "cron_period_s": args.cron_period,
          "loop_budget_s": args.budget or "default (62)", "worker_starts": starts,
          "lateness_s": {**stats, "max": round(max(late), 3) if late else None,
                         "over_1_5_s": sum(1 for x in late if x > TARGET_P99)},
          "target_p99_s": TARGET_P99, "met": stats["p99"] is not None and stats["p99"] <= TARGET_P99,
          "verified": verified, "ok": verified["ok"]})


if __name__ == "__main__":
    main()
