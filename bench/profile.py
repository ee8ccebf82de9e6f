#!/usr/bin/env python3
"""Where the time goes, with pyinstrument (`pip install -e '.[bench]'`), for the benchmarks
that miss a target. Not a benchmark: it prints pyinstrument's text report on stdout.

  python bench/profile.py worker --posts 2000   # one worker draining sandbox posts
  python bench/profile.py worker --platform x   # the same through the X client and fake X
  python bench/profile.py api --requests 2000   # POST /schedule-post through the Flask app

`worker` runs the worker's own drain loop with its publish pool replaced by one that runs each
job at once on the calling thread, because pyinstrument samples the thread it started on: the
same calls (claim, load, publish, record) in the same order, one at a time.
`api` sends the requests through Flask's test client: the app, the service and the database,
without gunicorn and the socket.
"""
from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import Executor, Future
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinstrument import Profiler  # noqa: E402

from bench.common import (  # noqa: E402
    bench_database, due_now, insert_posts, make_tenant, note, parser, utcnow,
)


class InlinePool(Executor):
    """A ThreadPoolExecutor stand-in that runs each job when it is submitted."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the real pool would keep it in the future too
            future.set_exception(exc)
        return future


def profile_worker(db, posts: int, platform: str) -> Profiler:
    if platform == "sandbox":
        return _profile_worker(db, posts, platform, {})
    from tests.fakes import running_fakes

    with running_fakes(delay=0) as fakes:  # answering at once: only our side's CPU is left
        return _profile_worker(db, posts, platform, {"x_api_base_url": fakes.x.base_url})


def _profile_worker(db, posts: int, platform: str, overrides: dict) -> Profiler:
    from app.db import make_engine, make_session_factory
    from worker.cycle import RunSummary, Worker

    company_id, account_id = make_tenant(db, platform)[:2]
    insert_posts(db, company_id, account_id, due_now(posts))
    settings = db.settings(worker_id="bench-profile", run_budget=3600, **overrides)
    engine = make_engine(settings)
    worker = Worker(settings, make_session_factory(engine))
    summary = RunSummary(worker_id=settings.worker_id)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    worker._drain(InlinePool(), summary, time.monotonic(), loop=False)
    profiler.stop()
    engine.dispose()
    note(f"published {summary.published} of {posts}")
    return profiler


def profile_api(db, requests: int) -> Profiler:
    from app import create_app

    _, account_id, key = make_tenant(db, "sandbox")
    app = create_app({"SETTINGS": db.settings(), "TESTING": True})
    client = app.test_client()
    at = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"Authorization": f"Bearer {key}"}
    run = uuid.uuid4().hex[:8]
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i in range(requests):
        answer = client.post("/schedule-post", headers=headers, json={
            "socialAccountId": account_id, "content": f"profile {run} {i}", "scheduledAt": at})
        assert answer.status_code == 201, answer.get_data(as_text=True)
    profiler.stop()
    app.extensions["scheduler"]["engine"].dispose()
    return profiler


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("target", choices=("worker", "api"))
    p.add_argument("--posts", type=int, default=2000)
    p.add_argument("--platform", choices=("sandbox", "x"), default="sandbox")
    p.add_argument("--requests", type=int, default=2000)
    args = p.parse_args()
    with bench_database(args.database_url, f"profile_{args.target}") as db:
        profiler = profile_worker(db, args.posts, args.platform) if args.target == "worker" else \
            profile_api(db, args.requests)
        count = args.posts if args.target == "worker" else args.requests
        session = profiler.last_session
        assert session is not None  # the profiler has run
        note(f"{count} in {session.duration:.2f} s on one thread "
             f"({count / session.duration:.0f}/s under the profiler)")
    print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
