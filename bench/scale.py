#!/usr/bin/env python3
"""Scale: does claiming get slower as post_schedule fills with history? The median time of
worker.queue.claim_due for one batch, with a small history (10,000 done/failed rows) and then a
large one (1,000,000), the same due rows waiting each time.

Each claim is undone after it is timed (rows back to pending, its publish_attempts rows
deleted), so every measurement claims from the same queue. Prints one JSON line; target: large /
small <= 1.3.
"""
from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    BenchDb, bench_database, emit, insert_history, insert_posts, make_tenant, median, note,
    parser, percentiles, utcnow,
)

TARGET_RATIO = 1.3


def time_claims(db: BenchDb, batch: int, rounds: int, warmup: int = 5) -> dict:
    from app.db import make_engine, make_session_factory
    from worker.queue import claim_due

    engine = make_engine(db.settings(worker_id="bench-scale"))
    sessions = make_session_factory(engine)
    timings = []
    try:
        for i in range(warmup + rounds):
            now = utcnow()
            started = time.perf_counter()
            claimed = claim_due(sessions, now, batch, "bench-scale")
            elapsed = time.perf_counter() - started
            if len(claimed) != batch:
                raise RuntimeError(f"claimed {len(claimed)} rows, expected {batch}")
            if i >= warmup:
                timings.append(elapsed)
            _undo(db, [c.schedule_id for c in claimed])
    finally:
        engine.dispose()
    ms = [t * 1000 for t in timings]
    return {"median_ms": round(median(ms), 3), **{k + "_ms": v for k, v in percentiles(ms).items()}}


def _undo(db: BenchDb, ids: list[int]) -> None:
    marks = ", ".join(["%s"] * len(ids))
    db.execute(f"UPDATE post_schedule SET status = 'pending', attempts = 0, locked_at = NULL, "
               f"worker_id = NULL, lock_token = NULL WHERE id IN ({marks})", ids)
    db.execute(f"DELETE FROM publish_attempts WHERE post_schedule_id IN ({marks})", ids)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=10_000, help="history rows, first measurement")
    p.add_argument("--large", type=int, default=1_000_000, help="history rows, second measurement")
    p.add_argument("--due", type=int, default=2_000, help="pending rows due now (plus as many "
                   "pending in the future)")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--rounds", type=int, default=300, help="timed claims per measurement")
    args = p.parse_args()
    if args.smoke:
        args.small, args.large, args.due, args.rounds = 1_000, 10_000, 200, 30
    with bench_database(args.database_url, "scale") as db:
        company_id, account_id = make_tenant(db, "sandbox")[:2]
        now = utcnow()
        insert_posts(db, company_id, account_id,
                     [now - timedelta(seconds=args.due - i) for i in range(args.due)], "due")
        insert_posts(db, company_id, account_id,
                     [now + timedelta(days=1, seconds=i) for i in range(args.due)], "future")
        insert_history(db, company_id, account_id, args.small)
        note(f"claiming with {args.small} history rows")
        small = time_claims(db, args.batch_size, args.rounds)
        note(f"adding history up to {args.large} rows")
        started = time.monotonic()
        insert_history(db, company_id, account_id, args.large - args.small)
        insert_seconds = time.monotonic() - started
        history = db.scalar("SELECT COUNT(*) FROM post_schedule WHERE status IN ('done', 'failed')")
        note(f"claiming with {history} history rows")
        large = time_claims(db, args.batch_size, args.rounds)
        pending = db.scalar("SELECT COUNT(*) FROM post_schedule WHERE status = 'pending'")
    ratio = round(large["median_ms"] / small["median_ms"], 3)
    emit({"bench": "scale", "smoke": args.smoke, "batch_size": args.batch_size,
          "rounds": args.rounds, "due": args.due,
          "small": {"history_rows": args.small, **small},
          "large": {"history_rows": history, **large},
          "history_insert_seconds": round(insert_seconds, 1), "ratio": ratio,
          "target_ratio": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
          "ok": history == args.large and pending == 2 * args.due})


if __name__ == "__main__":
    main()
