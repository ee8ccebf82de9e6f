"""How long a worker may still act on its claims: each claim's age on a monotonic clock, and
the heartbeat that moves its rows' `locked_at` forward (fenced by `lock_token`) while it lives.

A claim may be acted on (a request sent for it) while it is younger than the lock timeout minus
`Settings.claim_margin`: a request started then ends before anyone may recover the row. The age
counts from the claim, or from the start of the last heartbeat that found the row still ours; a
worker frozen (SIGSTOP, a VM pause, swap) past that resumes with claims too old to use.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.logs import event
from worker import queue
from worker.publishers.base import ClaimExpired
from worker.queue import Claimed

log = logging.getLogger("worker")


@dataclass
class _Lease:
    job: Claimed
    renewed: float      # time.monotonic() when the row was last known ours (claim or heartbeat)
    lost: bool = False  # a heartbeat found another owner


class Leases:
    """The claims a run holds, shared by its loop, its publishing threads and its heartbeat."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime]):
        self.sessions, self.clock = sessions, clock
        self.lock_timeout, self.margin = settings.lock_timeout, settings.claim_margin
        self.limit = settings.lock_timeout - settings.claim_margin
        self.interval = self.limit / 3  # three beats before a claim would be too old
        self._held: dict[tuple[int, str], _Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, jobs: list[Claimed], since: float) -> None:
        """Claims made by a transaction that started at `since` (time.monotonic())."""
        with self._lock:
            for job in jobs:
                self._held[(job.schedule_id, job.lock_token)] = _Lease(job, since)

    def discard(self, job: Claimed) -> None:
        with self._lock:
            self._held.pop((job.schedule_id, job.lock_token), None)

    def check(self, job: Claimed) -> None:
        """Raise ClaimExpired unless a request may still be sent for this claim."""
        lease = self._held.get((job.schedule_id, job.lock_token))
        if lease is None:
            return  # not a claim of this run (a publisher used outside the queue)
        if lease.lost:
            raise ClaimExpired("not sent: another worker recovered this claim meanwhile",
                               error_code="claim_lost")
        age = time.monotonic() - lease.renewed
        if age > self.limit:
            raise ClaimExpired(
                f"not sent: this worker's claim was {age:.1f} s old (the worker stalled?), past "
                f"SCHEDULER_LOCK_TIMEOUT ({self.lock_timeout} s) minus a {self.margin:g} s margin; "
                "another worker may hold the post now", error_code="claim_expired")

    # -- the heartbeat ----------------------------------------------------------------------

    def beat(self) -> None:
        """Extend every held claim still ours; mark the others lost."""
        since = time.monotonic()  # before the write: the age it gives is never too young
        with self._lock:
            held = [lease.job for lease in self._held.values() if not lease.lost]
        ours = queue.extend_locks(self.sessions, held, self.clock())
        with self._lock:
            for job in held:
                lease = self._held.get((job.schedule_id, job.lock_token))
                if lease is None:
                    continue
                if (job.schedule_id, job.lock_token) in ours:
                    lease.renewed = max(lease.renewed, since)
                else:
                    lease.lost = True

    def __enter__(self) -> "Leases":
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except (DBAPIError, queue.LockConflict) as exc:
                # Not extended: the claims age, and past the limit no request is sent for them.
                event(log, "heartbeat_failed", logging.WARNING,
                      error=f"could not extend this worker's claims: "
                            f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}")
            except Exception:  # a bug: say so, keep beating
                log.exception("heartbeat failed")
