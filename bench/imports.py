#!/usr/bin/env python3
"""Bulk import: POST /imports of a 10,000-row CSV (one sandbox account, a future time each),
timed end to end through Flask's test client (body read, CSV parsed, every row validated as
POST /schedule-post validates it, multi-row INSERTs, commit); then a bare reference on the same
database: the same rows (post_details + post_schedule) inserted with plain executemany in one
transaction, no parsing or validation. Median of --rounds each; prints one JSON line.
"""
from __future__ import annotations

import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    bench_database, emit, insert_posts, make_tenant, median, note, parser, utcnow,
)

HEADER = "socialAccountIds,content,scheduledAt,timezone,mediaUrls\n"


def csv_text(account_id: str, rows: int, tag: str) -> bytes:
    start = utcnow() + timedelta(days=30)
    return (HEADER + "".join(
        f"{account_id},Imported post {tag} {i}: a sentence of ordinary length to publish,"
        f"{(start + timedelta(minutes=i)).isoformat()},,\n" for i in range(rows))).encode()


def time_imports(db, key: str, account_id: str, rows: int, rounds: int) -> list[float]:
    from app import create_app

    app = create_app({"SETTINGS": db.settings(), "TESTING": True})
    client = app.test_client()
    timings = []
    try:
        for r in range(rounds):
            body = csv_text(account_id, rows, f"{r}-{uuid.uuid4().hex[:6]}")
            started = time.perf_counter()
            response = client.post("/imports", data=body, content_type="text/csv",
                                   headers={"Authorization": f"Bearer {key}"})
            timings.append(time.perf_counter() - started)
            if response.status_code != 201 or response.get_json()["posts"] != rows:
                raise RuntimeError(f"import answered {response.status_code}: "
                                   f"{response.get_data(as_text=True)[:500]}")
            note(f"round {r + 1}: {timings[-1]:.2f} s")
    finally:
        app.extensions["scheduler"]["engine"].dispose()
    return timings


def time_reference(db, company_id: str, account_id: str, rows: int, rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        start = utcnow() + timedelta(days=30)
        run_ats = [start + timedelta(minutes=i) for i in range(rows)]
        started = time.perf_counter()
        insert_posts(db, company_id, account_id, run_ats, "reference", chunk=rows)
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000, help="rows in the CSV")
    p.add_argument("--rounds", type=int, default=3, help="imports timed (and reference runs)")
    args = p.parse_args()
    if args.smoke:
        args.rows, args.rounds = 200, 1
    with bench_database(args.database_url, "imports") as db:
        company_id, account_id, key = make_tenant(db, "sandbox")
        note(f"importing {args.rows} rows x {args.rounds}")
        project = time_imports(db, key, account_id, args.rows, args.rounds)
        note("reference: plain executemany of the same rows")
        reference = time_reference(db, company_id, account_id, args.rows, args.rounds)
        imported = db.scalar("SELECT COUNT(*) FROM post_details WHERE content LIKE 'Imported%%'")
        queued = db.scalar("SELECT COUNT(*) FROM post_schedule s JOIN post_details d "
                           "ON d.id = s.post_detail_id WHERE d.content LIKE 'Imported%%' "
                           "AND s.status = 'pending'")
        engine = "postgresql" if db.postgresql else "mariadb"
    seconds, ref_seconds = median(project), median(reference)
    emit({"bench": "imports", "smoke": args.smoke, "engine": engine, "rows": args.rows,
          "rounds": args.rounds, "seconds": [round(t, 3) for t in project],
          "median_s": round(seconds, 3), "rows_per_s": round(args.rows / seconds),
          "reference_seconds": [round(t, 3) for t in reference],
          "reference_median_s": round(ref_seconds, 3),
          "ratio_reference_over_project": round(ref_seconds / seconds, 3),
          "ok": imported == queued == args.rows * args.rounds})


if __name__ == "__main__":
    main()
