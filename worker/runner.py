"""The one way to start a worker run, shared by `worker_trigger.py` and `scheduler worker run`:
check the login and the schema, then run one cycle."""
from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.db import (
    check_connection, check_schema, describe, explain_connect_error, make_engine,
    make_session_factory,
)
from app.errors import DatabaseUnavailable
from worker.cycle import RunSummary, Worker
from worker.publishers.base import Publisher

MAX_CONNECTIONS = 12  # database connections one worker run opens at most


def run_worker(settings: Settings, loop: bool = False,
               publishers: dict[str, Publisher] | None = None) -> RunSummary:
    # Publish threads touch the database only for outcomes other than success (the run's loop
    # writes those), so a few connections serve them all: at most MAX_CONNECTIONS per run.
    pool = min(settings.concurrency, MAX_CONNECTIONS - 2)
    engine = make_engine(settings, pre_ping=False, pool_size=pool, max_overflow=2)
    try:
        check_connection(engine)
        check_schema(engine)
        try:
            summary = Worker(settings, make_session_factory(engine), publishers).run(loop=loop)
        except DBAPIError as exc:  # the database went away mid-run: same exit as not reaching it
            raise DatabaseUnavailable(f"{explain_connect_error(engine, exc)} (mid-run: what was "
                                      f"published is found by the lookup once recovered after "
                                      f"SCHEDULER_LOCK_TIMEOUT)") from None
        if summary.outage or summary.unrecorded:
            raise DatabaseUnavailable(
                f"the database at {describe(engine)} was unreachable during the run "
                f"({summary.outage or 'while recording'}): {summary.unrecorded} outcomes were not "
                "recorded; their rows are recovered after SCHEDULER_LOCK_TIMEOUT and each post is "
                "looked for on its platform before any repost")
        return summary
    finally:
        engine.dispose()
