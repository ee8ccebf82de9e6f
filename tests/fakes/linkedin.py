"""LinkedIn's versioned Posts API: POST /rest/posts (201 with x-restli-id) and the author
finder GET /rest/posts?q=author, with the LinkedIn-Version and Rest.li headers enforced."""
from __future__ import annotations

import time

from tests.fakes.oauth import OAuthServer
from tests.fakes.server import Answer, FakePlatform, Received, page_of

REQUIRED = ("author", "commentary", "visibility", "distribution", "lifecycleState")


def _error(status: int, message: str, code: str | None = None,
           service_code: int | None = None, headers: dict | None = None) -> Answer:
    body = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    return Answer(status, body, headers or {})


class FakeLinkedIn(OAuthServer, FakePlatform):
    """LinkedIn's Posts API, its 3-legged OAuth at /oauth/v2 (client credentials in the form,
    60-day access tokens, refresh tokens not rotated, for apps that have them) and OpenID
    Connect's /v2/userinfo."""
    name = "linkedin"
    retry_after = 60
    authorize_path = "/oauth/v2/authorization"
    token_path = "/oauth/v2/accessToken"
    client_auth = "body"
    pkce = False
    access_ttl = 60 * 86400
    refresh_ttl = 365 * 86400
    rotate_refresh = False
    scope_separator = ","

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.oauth_init()
        self.user.id = "abc123XYZ"
        self.posts: list[dict] = []
        self.metrics: dict[str, dict] = {}  # post URN -> counts (default: made up)

    @property
    def oauth_base_url(self) -> str:
        return self.base_url + "/oauth/v2"

    def route(self, request: Received) -> Answer:
        oauth = self.oauth_route(request)
        if oauth is not None:
            return oauth
        if request.path == "/v2/userinfo" and request.method == "GET":
            user = self.user_of(request.token())
            return Answer(200, {"sub": user.id, "name": user.name, "email_verified": True})
        if request.path not in ("/rest/posts", "/rest/socialActions",
                                "/rest/organizationalEntityShareStatistics"):
            return _error(404, f"No virtual resource found for {request.path}", "NOT_FOUND")
        if not request.headers.get("linkedin-version"):
            return _error(400, "A version must be present. Please specify a version by adding "
                          "the LinkedIn-Version header.", "VERSION_MISSING")
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return _error(400, "Rest.li protocol version 2.0.0 is required", "ILLEGAL_ARGUMENT")
        if request.path == "/rest/socialActions":
            return self._social_actions(request)
        if request.path == "/rest/organizationalEntityShareStatistics":
            return self._share_statistics(request)
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

    def _counts(self, urn: str) -> dict:
        n = int(urn.rpartition(":")[2]) % 83
        return self.metrics.get(urn) or {"impressions": 600 + 10 * n, "likes": 4 + n,
                                         "comments": n % 5, "shares": n % 3, "clicks": n % 7}

    def _social_actions(self, request: Received) -> Answer:
        """BATCH_GET /rest/socialActions?ids=List(urn,...): `results` by URN, `errors` for the
        unknown ones."""
        urns = _list(request.query.get("ids", ""))
        if urns is None:
            return _error(400, "ids must be List(...) of URNs", "ILLEGAL_ARGUMENT", 100)
        known = {p["id"] for p in self.posts}
        results = {urn: {"$URN": f"urn:li:socialActions:{urn}", "target": urn,
                         "likesSummary": {"totalLikes": self._counts(urn)["likes"],
                                          "likedByCurrentUser": False},
                         "commentsSummary": {"aggregatedTotalComments": self._counts(urn)["comments"],
                                             "totalFirstLevelComments": self._counts(urn)["comments"]}}
                   for urn in urns if urn in known}
        errors = {urn: {"status": 404, "message": "Not found"} for urn in urns if urn not in known}
        return Answer(200, {"results": results, "statuses": {}, "errors": errors})

    def _share_statistics(self, request: Received) -> Answer:
        org = request.query.get("organizationalEntity", "")
        if request.query.get("q") != "organizationalEntity" or not org.startswith("urn:li:organization:"):
            return _error(400, "organizationalEntity must be an organization URN", "ILLEGAL_ARGUMENT", 100)
        urns = (_list(request.query.get("shares", "List()")) or []) + \
            (_list(request.query.get("ugcPosts", "List()")) or [])
        elements = []
        for post in self.posts:
            if post["id"] in urns and post["author"] == org:
                c = self._counts(post["id"])
                key = "share" if post["id"].startswith("urn:li:share:") else "ugcPost"
                elements.append({key: post["id"], "organizationalEntity": org,
                                 "totalShareStatistics": {
                                     "impressionCount": c["impressions"], "clickCount": c["clicks"],
                                     "likeCount": c["likes"], "commentCount": c["comments"],
                                     "shareCount": c["shares"], "uniqueImpressionsCount": c["impressions"] // 2,
                                     "engagement": 0.0}})
        return Answer(200, {"elements": elements, "paging": {"start": 0, "count": 10, "links": []}})

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


def _list(value: str) -> list[str] | None:
    """The URNs of a Rest.li List(a,b) (already unescaped by the query parser)."""
    if not (value.startswith("List(") and value.endswith(")")):
        return None
    inner = value[len("List("):-1]
    return [u for u in inner.split(",") if u]
