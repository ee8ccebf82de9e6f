"""LinkedIn's versioned Posts API: POST /rest/posts (201 with x-restli-id) and the author
finder GET /rest/posts?q=author, with the LinkedIn-Version and Rest.li headers enforced; the
Comments API (POST and GET /rest/socialActions/{post urn}/comments); the Images API
(initializeUpload, PUT to the uploadUrl) and the Videos API (initializeUpload with one upload URL
per 4 MB part, PUTs answered with ETags, finalizeUpload, GET for the status); a post's
content.media / content.multiImage must name uploaded media of the same owner."""
from __future__ import annotations

import hashlib
import re
import time
from urllib.parse import unquote

from tests.fakes.oauth import OAuthServer
from tests.fakes.server import Answer, FakePlatform, Received, page_of

PART = 4 * 1024 * 1024  # LinkedIn's video parts: 4 MB each, the last one shorter
_UPLOAD = re.compile(r"^/dms-uploads/(image|video)/(\d+)(?:/(\d+))?$")

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

    video_polls = 1  # GET /rest/videos/{urn} answers PROCESSING this many times

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.oauth_init()
        self.user.id = "abc123XYZ"
        self.posts: list[dict] = []
        self.comments: list[dict] = []  # {"id", "commentUrn", "object", "actor", "text", ...}
        # urn -> {"owner", "kind", "size", "parts": {index: etag}, "status", "polls", "bytes"}
        self.assets: dict[str, dict] = {}
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
        upload = _UPLOAD.match(request.path)
        if upload and request.method == "PUT":  # the upload URLs take no Rest.li headers
            return self._upload(request, *upload.groups())
        comments = COMMENTS.fullmatch(request.path)
        if not request.path.startswith(("/rest/posts", "/rest/images", "/rest/videos",
                                         "/rest/socialActions",
                                         "/rest/organizationalEntityShareStatistics")) and \
                not comments:
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
        if comments:
            target = unquote(comments.group(1))
            if not any(p["id"] == target for p in self.posts):
                return _error(404, f"Post {target} not found", "NOT_FOUND")
            if request.method == "POST":
                return self._comment(target, request)
            return self._comments_of(target, request)
        if request.path != "/rest/posts":
            return self._assets(request)
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
        refused = self._check_content(body)
        if refused is not None:
            return refused
        if any(p["author"] == body["author"] and p["commentary"] == body["commentary"]
               for p in self.posts):
            return self.failure("duplicate", request)
        post_id = f"urn:li:share:{self.new_id()}"
        self.posts.append({"id": post_id, "author": body["author"],
                           "commentary": body["commentary"], "content": body.get("content"),
                           "createdAt": int(time.time() * 1000)})
        return Answer(201, None, {"x-restli-id": post_id})

    # -- media ------------------------------------------------------------------------------

    def _check_content(self, body: dict) -> Answer | None:
        content = body.get("content") or {}
        items = ([content["media"]] if "media" in content else
                 (content.get("multiImage") or {}).get("images") or [])
        if "multiImage" in content and not 2 <= len(items) <= 20:
            return _error(422, "/content/multiImage/images :: must hold 2 to 20 images",
                          "UNPROCESSABLE_ENTITY", 100)
        for item in items:
            asset = self.assets.get(item.get("id", ""))
            if asset is None or asset["owner"] != body["author"]:
                return _error(422, f"/content :: media {item.get('id')} not found for the author",
                              "UNPROCESSABLE_ENTITY", 100)
            if asset["status"] != "AVAILABLE":
                return _error(422, f"/content :: media {item['id']} is {asset['status']}, not "
                              "AVAILABLE", "UNPROCESSABLE_ENTITY", 100)
            if "multiImage" in content and asset["kind"] != "image":
                return _error(422, "/content/multiImage :: images only", "UNPROCESSABLE_ENTITY", 100)
        return None

    def _assets(self, request: Received) -> Answer:
        kind = "image" if request.path.startswith("/rest/images") else "video"
        action = request.query.get("action")
        if request.method == "POST" and action == "initializeUpload":
            return self._initialize(request, kind)
        if request.method == "POST" and action == "finalizeUpload" and kind == "video":
            return self._finalize(request)
        urn = unquote(request.path.rpartition("/")[2])
        if request.method == "GET" and urn in self.assets:
            asset = self.assets[urn]
            if asset["status"] == "PROCESSING":
                asset["polls"] += 1
                if asset["polls"] > self.video_polls:
                    asset["status"] = "AVAILABLE"
            return Answer(200, {"id": urn, "status": asset["status"], "owner": asset["owner"]})
        return _error(404, f"No virtual resource found for {request.path}", "NOT_FOUND")

    def _initialize(self, request: Received, kind: str) -> Answer:
        spec = (request.json or {}).get("initializeUploadRequest") or {}
        owner = spec.get("owner", "")
        if not re.fullmatch(r"urn:li:(person|organization):[A-Za-z0-9_-]+", owner):
            return _error(422, "/initializeUploadRequest/owner :: not a person or organization URN",
                          "UNPROCESSABLE_ENTITY", 100)
        number = self.new_id()
        urn = f"urn:li:{kind}:C4E{number}"
        asset = {"owner": owner, "kind": kind, "size": None, "parts": {}, "polls": 0,
                 "status": "WAITING_UPLOAD", "bytes": 0}
        base = f"{self.base_url}/dms-uploads/{kind}/{number}"
        if kind == "image":
            self.assets[urn] = asset
            return Answer(200, {"value": {"uploadUrlExpiresAt": int(time.time() * 1000) + 3600000,
                                          "uploadUrl": base, "image": urn}})
        size = spec.get("fileSizeBytes")
        if not isinstance(size, int) or size <= 0:
            return _error(422, "/initializeUploadRequest/fileSizeBytes :: required",
                          "UNPROCESSABLE_ENTITY", 100)
        asset["size"] = size
        self.assets[urn] = asset
        instructions = [{"uploadUrl": f"{base}/{i}", "firstByte": first,
                         "lastByte": min(first + PART, size) - 1}
                        for i, first in enumerate(range(0, size, PART))]
        return Answer(200, {"value": {"uploadUrlsExpireAt": int(time.time() * 1000) + 3600000,
                                      "video": urn, "uploadInstructions": instructions,
                                      "uploadToken": f"token-{number}"}})

    def _upload(self, request: Received, kind: str, number: str, part: str | None) -> Answer:
        asset = self.assets.get(f"urn:li:{kind}:C4E{number}")
        if asset is None:
            return _error(404, "upload URL unknown or expired", "NOT_FOUND")
        asset["bytes"] += len(request.body)
        if kind == "image":
            asset["status"] = "AVAILABLE"
            return Answer(201, None)
        etag = hashlib.md5(request.body, usedforsecurity=False).hexdigest()  # an ETag, as S3-style stores make one
        asset["parts"][int(part)] = (etag, len(request.body))
        return Answer(200, None, {"ETag": f'"{etag}"'})

    def _finalize(self, request: Received) -> Answer:
        spec = (request.json or {}).get("finalizeUploadRequest") or {}
        asset = self.assets.get(spec.get("video", ""))
        if asset is None:
            return _error(404, "video not found", "NOT_FOUND")
        tags = [asset["parts"][i][0] for i in sorted(asset["parts"])]
        got = sum(size for _, size in asset["parts"].values())
        if [t.strip('"') for t in spec.get("uploadedPartIds") or []] != tags or got != asset["size"]:
            return _error(400, "uploadedPartIds do not match the parts uploaded",
                          "ILLEGAL_ARGUMENT", 100)
        asset["status"] = "PROCESSING"
        return Answer(200, None)

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


def _list(value: str) -> list[str] | None:
    """The URNs of a Rest.li List(a,b) (already unescaped by the query parser)."""
    if not (value.startswith("List(") and value.endswith(")")):
        return None
    inner = value[len("List("):-1]
    return [u for u in inner.split(",") if u]
