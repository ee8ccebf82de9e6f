"""Threads as the scheduler publishes to it (besides its login, `ThreadsLogin`): containers
(`POST /v1.0/{user-id}/threads`, TEXT), their `status`, `threads_publish`, the account's threads
and `threads_publishing_limit` (250 posts in a moving 24 hours); Graph-style errors.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from tests.fakes.server import Answer, Received, cursor, offset_of, page_of
from tests.fakes.threads_login import FakeThreadsLogin, _graph_error

QUOTA = 250
WINDOW = 86400


class FakeThreads(FakeThreadsLogin):
    """Its errors (`failure`) are the login fake's."""

    checks_until_finished = 1  # status reads answering IN_PROGRESS before FINISHED

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.containers: dict[str, dict] = {}  # id -> {"text", "status", "checks"}
        self.threads: list[dict] = []          # {"id", "text", "timestamp" (epoch), "user"}

    def route(self, request: Received) -> Answer:
        answer = self.login_route(request)
        if answer is not None:
            return answer
        prefix = f"/{self.version}/"
        parts = request.path.removeprefix(prefix).split("/")
        if not request.path.startswith(prefix):
            return _graph_error(f"Unknown path {request.path}", 100)
        if len(parts) == 2 and parts[1] == "threads" and request.method == "POST":
            return self._container(parts[0], request.form)
        if len(parts) == 2 and parts[1] == "threads_publish" and request.method == "POST":
            return self._publish(parts[0], request.form)
        if len(parts) == 2 and parts[1] in ("threads", "replies") and request.method == "GET":
            return self._list(parts[0], request.query, replies=parts[1] == "replies")
        if len(parts) == 2 and parts[1] == "threads_publishing_limit":
            return self._quota(parts[0])
        if len(parts) == 1 and parts[0] in self.containers:
            return self._status(parts[0])
        return _graph_error(f"Unsupported get request. Object with ID '{parts[0]}' does not "
                            "exist", 100)

    def _container(self, user: str, form: dict) -> Answer:
        if form.get("media_type") != "TEXT" or not form.get("text"):
            return _graph_error("(#100) The parameter text is required", 100)
        if len(form["text"]) > 500:
            return _graph_error("(#100) Param text must be at most 500 characters long.", 100)
        parent = form.get("reply_to_id")
        if parent is not None and not any(t["id"] == parent for t in self.threads):
            return _graph_error("(#100) Param reply_to_id is not a valid media id", 100)
        container = self.new_id()
        with self._lock:
            self.containers[container] = {"text": form["text"], "user": user, "reply_to": parent,
                                          "status": "IN_PROGRESS", "checks": 0}
        return Answer(200, {"id": container})

    def _status(self, container: str) -> Answer:
        with self._lock:
            entry = self.containers[container]
            entry["checks"] += 1
            if entry["status"] == "IN_PROGRESS" and entry["checks"] > self.checks_until_finished:
                entry["status"] = "FINISHED"
            return Answer(200, {"id": container, "status": entry["status"]})

    def _publish(self, user: str, form: dict) -> Answer:
        with self._lock:
            entry = self.containers.get(form.get("creation_id", ""))
            if entry is None or entry["user"] != user:
                return _graph_error("(#100) Param creation_id is not a valid container", 100)
            if entry["status"] == "PUBLISHED":
                return _graph_error("The media has already been published", 10, 400)
            if entry["status"] != "FINISHED":
                return _graph_error("The media is not ready to be published, please wait",
                                    9007, 400)
            if self._used(user) >= QUOTA:
                return _graph_error("The user has reached the publishing limit", 9, 400)
            entry["status"] = "PUBLISHED"
            thread = {"id": self.new_id(), "text": entry["text"], "timestamp": time.time(),
                      "user": user, "reply_to": entry["reply_to"]}
            self.threads.append(thread)
        return Answer(200, {"id": thread["id"]})

    def _used(self, user: str) -> int:
        return sum(1 for t in self.threads if t["user"] == user and
                   time.time() - t["timestamp"] < WINDOW)

    def _quota(self, user: str) -> Answer:
        return Answer(200, {"data": [{"quota_usage": self._used(user),
                                      "config": {"quota_total": QUOTA,
                                                 "quota_duration": WINDOW}}]})

    def _list(self, user: str, query: dict, replies: bool = False) -> Answer:
        if not self.reads_allowed:
            return _graph_error("(#10) Application does not have permission for this action", 10)
        since = float(query.get("since") or 0)
        data = [{"id": t["id"], "text": t["text"],
                 "timestamp": datetime.fromtimestamp(t["timestamp"], timezone.utc)
                 .strftime("%Y-%m-%dT%H:%M:%S+0000")}
                for t in reversed(self.threads) if t["user"] == user and t["timestamp"] >= since
                and bool(t.get("reply_to")) == replies]
        data, following = page_of(data, offset_of(query.get("after")),
                                  int(query.get("limit", 25)))
        body = {"data": data, "paging": {"cursors": {}}}
        if following is not None:
            body["paging"] = {"cursors": {"after": cursor(following)}, "next": "more"}
        return Answer(200, body)

    def add_threads(self, user: str, count: int, at: float | None = None, text: str = "x") -> None:
        """Posts made on the account before (`at`, Unix seconds, default now)."""
        with self._lock:
            self.threads.extend({"id": self.new_id(), "text": f"{text} {i}", "user": user,
                                 "timestamp": at or time.time()} for i in range(count))
