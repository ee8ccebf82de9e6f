"""Meta's Graph API as the Facebook Page and Instagram publishers use it: versioned paths,
form-encoded POSTs carrying access_token, Graph error objects with `code`, usage headers,
Page feed/photos/videos/published_posts and Instagram media containers; and Facebook Login
(tests/fakes/facebook_login.py), which connects the accounts."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from tests.fakes.facebook_login import FacebookLogin
from tests.fakes.server import Answer, FakePlatform, Received, cursor, offset_of, page_of


def _error(status: int, message: str, kind: str, code: int, subcode: int | None = None,
           transient: bool | None = None, headers: dict | None = None) -> Answer:
    error = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    return Answer(status, {"error": error}, headers or {})


class FakeGraph(FacebookLogin, FakePlatform):
    name = "graph"
    version = "v25.0"
    regain_minutes = 3
    # The statuses a new container goes through, one per status check.
    container_states: tuple[str, ...] = ("IN_PROGRESS", "FINISHED")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.posts: list[dict] = []       # Page posts: {"id", "page", "message", ...}
        self.containers: dict[str, dict] = {}
        self.media: list[dict] = []       # published Instagram media
        self.metrics: dict[str, dict] = {}  # post/media id -> counts (default: made up)

    def route(self, request: Received) -> Answer:
        prefix = f"/{self.version}/"
        if not request.path.startswith(prefix):
            return _error(400, f"Unknown path components: {request.path}", "OAuthException", 2500)
        login = self.login_route(request)
        if login is not None:
            return login
        node, _, edge = request.path[len(prefix):].partition("/")
        handler = getattr(self, f"_{request.method.lower()}_{edge or 'node'}", None)
        if handler is None:
            return _error(400, f"Unsupported {request.method} request. Object with ID '{node}' "
                          "does not exist", "GraphMethodException", 100, 33)
        return handler(node, request)

    # -- Facebook Page ------------------------------------------------------------------

    def _post_feed(self, page: str, request: Received) -> Answer:
        form = request.form
        if not form.get("message") and not form.get("link") and not form.get("attached_media"):
            return _error(400, "(#100) The parameter message or link is required",
                          "OAuthException", 100)
        if any(p["page"] == page and p.get("message") == form.get("message") for p in self.posts):
            return self.failure("duplicate", request)
        return Answer(200, {"id": self._page_post(page, form.get("message"))})

    def _post_photos(self, page: str, request: Received) -> Answer:
        form, photo = request.form, self.new_id()
        if form.get("published") == "false":
            return Answer(200, {"id": photo})
        return Answer(200, {"id": photo, "post_id": self._page_post(page, form.get("message"))})

    def _post_videos(self, page: str, request: Received) -> Answer:
        self._page_post(page, request.form.get("description"))
        return Answer(200, {"id": self.new_id()})

    def _get_published_posts(self, page: str, request: Received) -> Answer:
        if not self.reads_allowed:
            return self._no_permission("pages_read_engagement")
        since = datetime.fromtimestamp(int(request.query.get("since", 0)), timezone.utc)
        return self._list(request, [
            {"id": p["id"], "message": p.get("message"), "created_time": _stamp(p["created"])}
            for p in reversed(self.posts) if p["page"] == page and p["created"] >= since])

    def _list(self, request: Received, items: list[dict]) -> Answer:
        """A list edge's page: `limit` (default 25, at most 100) from the `after` cursor, with
        `paging.cursors` and, when there is more, `paging.next`."""
        size = min(int(request.query.get("limit", 25)), 100)
        start = offset_of(request.query.get("after"))
        data, following = page_of(items, start, size)
        if not data:
            return Answer(200, {"data": []})
        paging: dict[str, Any] = {"cursors": {"before": cursor(start), "after": cursor(start + len(data))}}
        if following is not None:
            # Graph's own next link carries the token in its query; the worker never follows it.
            paging["next"] = (f"{self.base_url}{request.path}?limit={size}"
                              f"&after={paging['cursors']['after']}&access_token=TOKEN")
        return Answer(200, {"data": data, "paging": paging})

    def add_posts(self, owner: str, texts: list[str], instagram: bool = False) -> None:
        """Posts made on the Page (or Instagram account) by someone else, newest last."""
        for text in texts:
            if instagram:
                self.media.append({"id": self.new_id(), "user": owner, "caption": text,
                                   "created": datetime.now(timezone.utc)})
            else:
                self._page_post(owner, text)

    def _page_post(self, page: str, message: str | None) -> str:
        post_id = f"{page}_{self.new_id()}"
        self.posts.append({"id": post_id, "page": page, "message": message,
                           "created": datetime.now(timezone.utc)})
        return post_id

    # -- Instagram ----------------------------------------------------------------------

    def _post_media(self, user: str, request: Received) -> Answer:
        form = request.form
        if not (form.get("image_url") or form.get("video_url") or form.get("children")):
            return _error(400, "(#100) The parameter image_url is required.", "OAuthException", 100)
        container = self.new_id()
        self.containers[container] = {"user": user, "caption": form.get("caption"),
                                      "states": list(self.container_states), "published": False}
        return Answer(200, {"id": container})

    def _get_node(self, node: str, request: Received) -> Answer:
        if node == "" and "ids" in request.query:
            return self._get_many(request)
        container = self.containers.get(node)
        if container is None:
            return _error(400, f"Unsupported get request. Object with ID '{node}' does not exist",
                          "GraphMethodException", 100, 33)
        if container["published"]:
            status = "PUBLISHED"
        else:
            states = container["states"]
            status = states.pop(0) if len(states) > 1 else states[0]
        return Answer(200, {"status_code": status, "id": node})

    def _post_media_publish(self, user: str, request: Received) -> Answer:
        container = self.containers.get(request.form.get("creation_id", ""))
        if container is None or container["user"] != user:
            return _error(400, "(#100) Param creation_id must be a valid container id",
                          "OAuthException", 100)
        if container["published"]:
            return _error(400, "The media has already been published", "OAuthException", 9007,
                          2207008)
        if container["states"][0] != "FINISHED":
            return _error(400, "Media ID is not available", "OAuthException", 9007, 2207027)
        container["published"] = True
        media = {"id": self.new_id(), "user": user, "caption": container["caption"],
                 "created": datetime.now(timezone.utc)}
        self.media.append(media)
        return Answer(200, {"id": media["id"]})

    def _get_media(self, user: str, request: Received) -> Answer:
        if not self.reads_allowed:
            return self._no_permission("instagram_basic")
        since = datetime.fromtimestamp(int(request.query.get("since", 0)), timezone.utc)
        return self._list(request, [
            {"id": m["id"], "caption": m["caption"], "timestamp": _stamp(m["created"])}
            for m in reversed(self.media) if m["user"] == user and m["created"] >= since])

    # -- metrics (GET /?ids=a,b&fields=...) ----------------------------------------------

    def _get_many(self, request: Received) -> Answer:
        """Several Page posts or Instagram media at once, with the metric fields asked for."""
        ids = request.query["ids"].split(",")
        if len(ids) > 50:
            return _error(400, "(#100) Too many IDs. Maximum: 50", "OAuthException", 100)
        fields = request.query.get("fields", "")
        posts = {p["id"]: p for p in self.posts}
        media = {m["id"]: m for m in self.media}
        out = {}
        for node in ids:
            if node not in posts and node not in media:
                return _error(400, f"(#803) Some of the aliases you requested do not exist: {node}",
                              "OAuthException", 803)
            counts = self.metrics.get(node) or _made_up(node)
            if node in posts:
                out[node] = {"id": node, "shares": {"count": counts["shares"]},
                             "reactions": {"data": [], "summary": {"total_count": counts["likes"]}},
                             "comments": {"data": [], "summary": {"total_count": counts["comments"]}},
                             "insights": _insights(fields, {"post_impressions": counts["impressions"],
                                                            "post_clicks": counts["clicks"]})}
            else:
                out[node] = {"id": node, "like_count": counts["likes"],
                             "comments_count": counts["comments"],
                             "insights": _insights(fields, {"views": counts["impressions"],
                                                            "reach": counts["impressions"] // 2,
                                                            "saved": counts["saves"],
                                                            "shares": counts["shares"]})}
        return Answer(200, out)

    # -- errors -------------------------------------------------------------------------

    def _no_permission(self, permission: str) -> Answer:
        return _error(403, f"(#10) This endpoint requires the '{permission}' permission",
                      "OAuthException", 10)

    def failure(self, kind: str, request: Received, **options) -> Answer:
        if kind == "auth":
            return _error(400, "Error validating access token: Session has expired on Friday, "
                          "20-Nov-26 10:00:00 PST.", "OAuthException", 190, 463)
        if kind == "rate_limited":
            code = options.get("code", 32)
            minutes = options.get("regain_minutes", self.regain_minutes)
            usage = {"call_count": 100, "total_cputime": 12, "total_time": 40,
                     "type": "pages", "estimated_time_to_regain_access": minutes}
            return _error(400, "(#32) Page request limit reached", "OAuthException", code,
                          headers={"X-Business-Use-Case-Usage": json.dumps({"123": [usage]})})
        if kind == "retryable":
            return _error(500, "An unexpected error has occurred. Please retry your request "
                          "later.", "OAuthException", 2, transient=True)
        if kind == "duplicate":
            return _error(400, "(#506) Duplicate status message", "OAuthException", 506)
        return _error(400, "(#100) Invalid parameter", "OAuthException", 100,
                      options.get("subcode", 2207052))


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _made_up(node: str) -> dict:
    n = int(node.rpartition("_")[2]) % 89
    return {"impressions": 800 + 10 * n, "likes": 5 + n, "comments": n % 6, "shares": n % 4,
            "saves": n % 5, "clicks": n % 9}


def _insights(fields: str, values: dict[str, int]) -> dict:
    """The `insights` edge for the metrics named in `fields` (insights.metric(a,b))."""
    asked = fields.partition("insights.metric(")[2].partition(")")[0].split(",")
    return {"data": [{"name": name, "period": "lifetime", "values": [{"value": values[name]}],
                      "id": f"x/insights/{name}/lifetime"} for name in asked if name in values]}
