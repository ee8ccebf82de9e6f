"""LinkedIn's versioned Posts API: POST /rest/posts (201 with x-restli-id) and the author
finder GET /rest/posts?q=author; the Comments API (POST and GET
/rest/socialActions/{post urn}/comments); the LinkedIn-Version and Rest.li headers enforced."""
from __future__ import annotations

import re
import time
from urllib.parse import unquote

from tests.fakes.server import Answer, FakePlatform, Received, page_of

REQUIRED = ("author", "commentary", "visibility", "distribution", "lifecycleState")
COMMENTS = re.compile(r"/rest/socialActions/([^/]+)/comments")


def _error(status: int, message: str, code: str | None = None,
           service_code: int | None = None, headers: dict | None = None) -> Answer:
    body = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    return Answer(status, body, headers or {})


class FakeLinkedIn(FakePlatform):
    name = "linkedin"
    retry_after = 60

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.posts: list[dict] = []
        self.comments: list[dict] = []  # {"id", "commentUrn", "object", "actor", "text", ...}

    def route(self, request: Received) -> Answer:
        comments = COMMENTS.fullmatch(request.path)
        if request.path != "/rest/posts" and not comments:
            return _error(404, f"No virtual resource found for {request.path}", "NOT_FOUND")
        if not request.headers.get("linkedin-version"):
            return _error(400, "A version must be present. Please specify a version by adding "
                          "the LinkedIn-Version header.", "VERSION_MISSING")
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return _error(400, "Rest.li protocol version 2.0.0 is required", "ILLEGAL_ARGUMENT")
        if comments:
            target = unquote(comments.group(1))
            if not any(p["id"] == target for p in self.posts):
                return _error(404, f"Post {target} not found", "NOT_FOUND")
            if request.method == "POST":
                return self._comment(target, request)
            return self._comments_of(target, request)
        if request.method == "POST":
            return self._create(request)
        if request.query.get("q") == "author":
            return self._by_author(request)
        return _error(400, "Unsupported finder", "ILLEGAL_ARGUMENT")

    def _create(self, request: Received) -> Answer:
        body = request.json or {}
        missing = [name for name in REQUIRED if name not in body]
        if missing:
            return _error(422, f"/{missing[0]} :: field is required but not found",
                          "UNPROCESSABLE_ENTITY", 100)
        if body["lifecycleState"] != "PUBLISHED":
            return _error(422, "/lifecycleState :: must be PUBLISHED", "UNPROCESSABLE_ENTITY", 100)
        if any(p["author"] == body["author"] and p["commentary"] == body["commentary"]
               for p in self.posts):
            return self.failure("duplicate", request)
        post_id = f"urn:li:share:{self.new_id()}"
        self.posts.append({"id": post_id, "author": body["author"],
                           "commentary": body["commentary"],
                           "createdAt": int(time.time() * 1000)})
        return Answer(201, None, {"x-restli-id": post_id})

    def _by_author(self, request: Received) -> Answer:
        if not self.reads_allowed:
            return _error(403, "Not enough permissions to access: partnerApiPostsExternal.FINDER-author",
                          "ACCESS_DENIED", 100)
        author = request.query.get("author")
        start, count = int(request.query.get("start", 0)), int(request.query.get("count", 10))
        if count > 100:
            return _error(400, "count must be at most 100", "ILLEGAL_ARGUMENT", 100)
        elements = [{"id": p["id"], "author": p["author"], "commentary": p["commentary"],
                     "createdAt": p["createdAt"], "lifecycleState": "PUBLISHED"}
                    for p in reversed(self.posts) if p["author"] == author]
        page, following = page_of(elements, start, count)
        links = [] if following is None else [{
            "rel": "next", "type": "application/json",
            "href": f"/rest/posts?q=author&author={author}&start={following}&count={count}"}]
        return Answer(200, {"elements": page, "paging": {"start": start, "count": count,
                                                         "links": links}})

    def _comment(self, target: str, request: Received) -> Answer:
        body = request.json or {}
        text = (body.get("message") or {}).get("text")
        if not body.get("actor") or body.get("object") != target or not text:
            return _error(422, "/message/text :: field is required but not found",
                          "UNPROCESSABLE_ENTITY", 100)
        number = self.new_id()
        comment = {"id": number, "commentUrn": f"urn:li:comment:({target},{number})",
                   "object": target, "actor": body["actor"], "message": {"text": text},
                   "created": {"actor": body["actor"], "time": int(time.time() * 1000)}}
        self.comments.append(comment)
        return Answer(201, comment, {"x-restli-id": number})

    def _comments_of(self, target: str, request: Received) -> Answer:
        if not self.reads_allowed:
            return _error(403, "Not enough permissions to access: socialActions.comments.GET",
                          "ACCESS_DENIED", 100)
        start, count = int(request.query.get("start", 0)), int(request.query.get("count", 10))
        page, _ = page_of([c for c in self.comments if c["object"] == target], start, count)
        return Answer(200, {"elements": page, "paging": {"start": start, "count": count}})

    def add_posts(self, author: str, commentaries: list[str]) -> None:
        """Posts made by the author with another tool, newest last."""
        with self._lock:
            self.posts.extend({"id": f"urn:li:share:{self.new_id()}", "author": author,
                               "commentary": text, "createdAt": int(time.time() * 1000)}
                              for text in commentaries)

    def failure(self, kind: str, request: Received, **options) -> Answer:
        if kind == "auth":
            return _error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        if kind == "rate_limited":
            return _error(429, "Resource level throttle APPLICATION DAY limit for calls to this "
                          "resource is reached.", headers={
                              "Retry-After": str(options.get("retry_after", self.retry_after))})
        if kind == "retryable":
            return _error(500, "Internal Server Error")
        if kind == "duplicate":
            return _error(422, "Content is a duplicate of urn:li:share:1000", "DUPLICATE_POST")
        return _error(400, "/commentary :: text length exceeds 3000", "ILLEGAL_ARGUMENT", 100)
