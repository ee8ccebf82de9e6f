"""X API v2 as the scheduler uses it: POST /2/tweets (with media.media_ids, and replies) and GET
/2/users/:id/tweets, with X's problem-JSON errors and x-rate-limit-* headers; media upload:
POST /2/media/upload (one image, multipart), the chunked initialize / {id}/append /
{id}/finalize with GET /2/media/upload?command=STATUS polling for video and GIF, and
POST /2/media/metadata for alt text; GET /2/tweets?ids= (public_metrics)."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from tests.fakes.oauth import OAuthServer
from tests.fakes.server import Answer, FakePlatform, Received, cursor, offset_of, page_of


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> dict:
    return {"title": title, "detail": detail, "type": kind, "status": status}


MB = 1024 * 1024
IMAGE_CATEGORIES = ("tweet_image", "dm_image", "subtitles")
CHUNKED_CATEGORIES = ("tweet_video", "tweet_gif", "amplify_video")
MAX_CHUNK = 5 * MB  # X: "each APPEND chunk must be 5 MB or less"
_CHUNKED = re.compile(r"^/2/media/upload/(\w+)/(append|finalize)$")


def _invalid(detail: str) -> Answer:
    return Answer(400, {"errors": [{"message": detail}], "title": "Invalid Request",
                        "detail": "One or more parameters to your request was invalid.",
                        "type": "https://api.twitter.com/2/problems/invalid-request"})


class FakeX(OAuthServer, FakePlatform):
    """X API v2, and its OAuth 2.0 server: authorize at /i/oauth2/authorize (PKCE), tokens at
    /2/oauth2/token (Basic client auth; 2-hour access tokens; single-use refresh tokens)."""
    name = "x"
    reset_in = 120  # seconds until x-rate-limit-reset in a 429
    status_polls = 2  # STATUS answers in_progress this many times before succeeded
    authorize_path = "/i/oauth2/authorize"
    token_path = "/2/oauth2/token"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.oauth_init()
        self.tweets: list[dict] = []  # {"id", "text", "token", "created_at", "media_ids"}
        self._texts: set[tuple[str | None, str]] = set()  # (token, text): X refuses a repeat
        # id -> {"token", "type", "category", "total", "segments": {index: size}, "state",
        #        "polls", "alt_text"}
        self.media: dict[str, dict] = {}
        self.metrics: dict[str, dict] = {}  # tweet id -> public_metrics (default: made up)

    @property
    def authorize_url(self) -> str:
        return self.base_url + self.authorize_path

    def route(self, request: Received) -> Answer:
        oauth = self.oauth_route(request)
        if oauth is not None:
            return oauth
        if request.method == "GET" and request.path == "/2/users/me":
            user = self.user_of(request.token())
            return Answer(200, {"data": {"id": user.id, "username": user.username,
                                         "name": user.name}})
        if request.path.startswith("/2/media"):
            return self._media_route(request)
        if request.method == "POST" and request.path == "/2/tweets":
            return self._create(request)
        if request.method == "GET" and request.path.startswith("/2/users/") and \
                request.path.endswith("/tweets"):
            return self._timeline(request)
        if request.method == "GET" and request.path == "/2/tweets":
            return self._lookup(request)
        return Answer(404, _problem(404, "Not Found Error", f"no route {request.path}"))

    def _lookup(self, request: Received) -> Answer:
        """GET /2/tweets?ids=: 1 to 100 ids; unknown ones come back in `errors`."""
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            return Answer(400, _problem(400, "Invalid Request",
                                        "The `ids` query parameter value must have 1 to 100 items"))
        known = {t["id"]: t for t in self.tweets}
        fields = request.query.get("tweet.fields", "").split(",")
        data, errors = [], []
        for tweet_id in ids:
            tweet = known.get(tweet_id)
            if tweet is None:
                errors.append({"value": tweet_id, "detail": f"Could not find tweet with ids: [{tweet_id}].",
                               "title": "Not Found Error", "resource_type": "tweet",
                               "type": "https://api.twitter.com/2/problems/resource-not-found"})
                continue
            item = {"id": tweet_id, "text": tweet["text"], "edit_history_tweet_ids": [tweet_id]}
            if "public_metrics" in fields:
                item["public_metrics"] = self.metrics.get(tweet_id) or made_up(tweet_id)
            data.append(item)
        body = {"data": data} if data else {}
        if errors:
            body["errors"] = errors
        return Answer(200, body)

    def _create(self, request: Received) -> Answer:
        body = request.json or {}
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return Answer(400, {"errors": [{"message": "$.text: must not be empty"}],
                                "title": "Invalid Request",
                                "detail": "One or more parameters to your request was invalid.",
                                "type": "https://api.twitter.com/2/problems/invalid-request"})
        media_ids = (body.get("media") or {}).get("media_ids") or []
        refused = self._check_attached(request, media_ids)
        if refused is not None:
            return refused
        replying_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        with self._lock:
            if replying_to is not None and not any(t["id"] == replying_to for t in self.tweets):
                return Answer(400, {"errors": [{"message": "Invalid Request: the Tweet you are "
                                                           "replying to does not exist"}],
                                    "title": "Invalid Request",
                                    "detail": "One or more parameters to your request was invalid.",
                                    "type": "https://api.twitter.com/2/problems/invalid-request"})
            if (request.token(), text) in self._texts:
                return self.failure("duplicate", request)
            self._texts.add((request.token(), text))
            tweet = {"id": self.new_id(), "text": text, "token": request.token(),
                     "created_at": datetime.now(timezone.utc), "media_ids": list(media_ids),
                     "in_reply_to": replying_to}
            self.tweets.append(tweet)
        return Answer(201, {"data": {"id": tweet["id"], "text": text,
                                     "edit_history_tweet_ids": [tweet["id"]]}})

    def _check_attached(self, request: Received, media_ids: list) -> Answer | None:
        if len(media_ids) > 4:
            return _invalid("$.media.media_ids: size must be between 1 and 4")
        kinds = []
        for media_id in media_ids:
            media = self.media.get(str(media_id))
            if media is None or media["token"] != request.token():
                return _invalid(f"Your media IDs are invalid: {media_id}")
            if media["state"] != "succeeded":
                return _invalid(f"Media {media_id} is not ready: processing {media['state']}")
            kinds.append(media["category"])
        if len(kinds) > 1 and any(k in CHUNKED_CATEGORIES for k in kinds):
            return _invalid("Your media IDs are invalid: a video or GIF must be the only media")
        return None

    # -- media upload --------------------------------------------------------------------

    def _media_route(self, request: Received) -> Answer:
        chunked = _CHUNKED.match(request.path)
        if request.method == "POST" and request.path == "/2/media/upload":
            return self._simple_upload(request)
        if request.method == "POST" and request.path == "/2/media/upload/initialize":
            return self._initialize(request)
        if request.method == "POST" and chunked:
            media = self.media.get(chunked.group(1))
            if media is None or media["token"] != request.token():
                return _invalid(f"media_id {chunked.group(1)} is not a valid upload")
            return (self._append if chunked.group(2) == "append" else self._finalize)(request, media)
        if request.method == "GET" and request.path == "/2/media/upload":
            return self._status(request)
        if request.method == "POST" and request.path == "/2/media/metadata":
            return self._metadata(request)
        return Answer(404, _problem(404, "Not Found Error", f"no route {request.path}"))

    def _new_media(self, request: Received, **fields) -> tuple[str, dict]:
        media_id = str(10 ** 18 + int(self.new_id()))
        media = {"token": request.token(), "segments": {}, "polls": 0, "alt_text": None, **fields}
        with self._lock:
            self.media[media_id] = media
        return media_id, media

    def _simple_upload(self, request: Received) -> Answer:
        form = request.multipart or {}
        data, category = form.get("media"), (form.get("media_category") or b"tweet_image").decode()
        if not data:
            return _invalid("$.media: must not be null")
        if category not in IMAGE_CATEGORIES:
            return _invalid(f"media_category {category} needs the chunked upload (initialize)")
        if len(data) > 5 * MB:
            return _invalid("File size exceeds 5242880 bytes.")
        media_id, _ = self._new_media(request, type="image", category=category, total=len(data),
                                      state="succeeded", segments={0: len(data)})
        return Answer(200, {"data": {"id": media_id, "media_key": f"3_{media_id}",
                                     "size": len(data), "expires_after_secs": 86400,
                                     "image": {"image_type": "image/jpeg"}}})

    def _initialize(self, request: Received) -> Answer:
        body = request.json or {}
        total, kind = body.get("total_bytes"), body.get("media_type")
        category = body.get("media_category")
        if not isinstance(total, int) or total <= 0 or not kind:
            return _invalid("$.total_bytes and $.media_type are required")
        if category not in IMAGE_CATEGORIES + CHUNKED_CATEGORIES:
            return _invalid(f"$.media_category: {category} is not one of "
                            f"{', '.join(IMAGE_CATEGORIES + CHUNKED_CATEGORIES)}")
        if category == "tweet_video" and total > 512 * MB:
            return _invalid("File size exceeds 536870912 bytes.")
        media_id, _ = self._new_media(request, type=kind, category=category, total=total,
                                      state="uploading")
        return Answer(200, {"data": {"id": media_id, "media_key": f"7_{media_id}",
                                     "expires_after_secs": 86400}})

    def _append(self, request: Received, media: dict) -> Answer:
        form = request.multipart or {}
        data, index = form.get("media"), form.get("segment_index")
        if data is None or index is None or not index.decode().isdigit():
            return _invalid("$.media and $.segment_index are required")
        if len(data) > MAX_CHUNK:
            return _invalid(f"segment {index.decode()} is larger than 5 MB")
        if media["state"] != "uploading":
            return _invalid("the upload is finalized: append is refused")
        media["segments"][int(index)] = len(data)
        return Answer(200, {"data": {"expires_at": int(time.time()) + 86400}})

    def _finalize(self, request: Received, media: dict) -> Answer:
        got = sum(media["segments"].values())
        if sorted(media["segments"]) != list(range(len(media["segments"]))) or got != media["total"]:
            return _invalid(f"File size mismatch: {got} bytes appended, {media['total']} declared")
        media_id = next(k for k, v in self.media.items() if v is media)
        body = {"id": media_id, "media_key": f"7_{media_id}", "size": got,
                "expires_after_secs": 86400}
        if media["category"] in CHUNKED_CATEGORIES:
            media["state"] = "pending"
            body["processing_info"] = {"state": "pending", "check_after_secs": 1}
        else:
            media["state"] = "succeeded"
        return Answer(200, {"data": body})

    def _status(self, request: Received) -> Answer:
        if request.query.get("command") != "STATUS":
            return _invalid("command must be STATUS")
        media = self.media.get(request.query.get("media_id", ""))
        if media is None or media["token"] != request.token():
            return _invalid(f"media_id {request.query.get('media_id')} is not a valid upload")
        if media["state"] in ("pending", "in_progress"):
            media["polls"] += 1
            media["state"] = "succeeded" if media["polls"] > self.status_polls else "in_progress"
        info = {"state": media["state"]}
        if media["state"] == "in_progress":
            info.update(check_after_secs=1, progress_percent=50)
        return Answer(200, {"data": {"id": request.query["media_id"], "processing_info": info}})

    def _metadata(self, request: Received) -> Answer:
        body = request.json or {}
        media = self.media.get(str(body.get("id")))
        text = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if media is None or media["token"] != request.token():
            return _invalid(f"media {body.get('id')} is not a valid upload")
        if not isinstance(text, str) or len(text) > 1000:
            return _invalid("$.metadata.alt_text.text: 1 to 1000 characters")
        media["alt_text"] = text
        return Answer(200, {"data": {"id": body["id"], "associated_metadata": body["metadata"]}})

    def _timeline(self, request: Received) -> Answer:
        if not self.reads_allowed:
            return Answer(403, _problem(403, "Unsupported Authentication",
                                        "Your token lacks the tweet.read scope.",
                                        "https://api.twitter.com/2/problems/unsupported-authentication"))
        since = datetime.fromisoformat(request.query["start_time"].replace("Z", "+00:00"))
        size = int(request.query.get("max_results", 10))
        if not 5 <= size <= 100:
            return Answer(400, _problem(400, "Invalid Request",
                                        "The `max_results` query parameter value is not between "
                                        "5 and 100"))
        fields = request.query.get("tweet.fields", "").split(",")
        data = [{"id": t["id"], "text": t["text"],
                 "created_at": t["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                 "edit_history_tweet_ids": [t["id"]],
                 **({"referenced_tweets": [{"type": "replied_to", "id": t["in_reply_to"]}]}
                    if t.get("in_reply_to") and "referenced_tweets" in fields else {})}
                for t in reversed(self.tweets)
                if t["token"] == request.token() and t["created_at"] >= since]
        data, following = page_of(data, offset_of(request.query.get("pagination_token")), size)
        if not data:
            return Answer(200, {"meta": {"result_count": 0}})
        meta = {"result_count": len(data), "newest_id": data[0]["id"], "oldest_id": data[-1]["id"]}
        if following is not None:
            meta["next_token"] = cursor(following)
        return Answer(200, {"data": data, "meta": meta})

    def add_posts(self, token: str, texts: list[str]) -> None:
        """Posts made on the account by someone else (another tool, a person), newest last."""
        with self._lock:
            self.tweets.extend({"id": self.new_id(), "text": text, "token": token,
                                "created_at": datetime.now(timezone.utc)} for text in texts)

    def failure(self, kind: str, request: Received, **options) -> Answer:
        if kind == "auth":
            return Answer(401, _problem(401, "Unauthorized", "Unauthorized"))
        if kind == "rate_limited":
            reset = int(time.time()) + options.get("reset_in", self.reset_in)
            return Answer(429, _problem(429, "Too Many Requests", "Too Many Requests"), {
                "x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(reset)})
        if kind == "retryable":
            return Answer(503, _problem(503, "Service Unavailable", "Service Unavailable"))
        if kind == "duplicate":
            return Answer(403, _problem(
                403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."))
        return Answer(400, {"errors": [{"message": "The Tweet text is invalid."}],
                            "title": "Invalid Request",
                            "detail": "One or more parameters to your request was invalid.",
                            "type": "https://api.twitter.com/2/problems/invalid-request"})


def made_up(tweet_id: str) -> dict:
    n = int(tweet_id) % 97
    return {"retweet_count": n % 5, "reply_count": n % 7, "like_count": 10 + n, "quote_count": 1,
            "bookmark_count": n % 3, "impression_count": 1000 + 10 * n}
