"""X API v2 as the scheduler uses it: POST /2/tweets, GET /2/users/:id/tweets and GET
/2/tweets?ids= (public_metrics), with X's problem-JSON errors and x-rate-limit-* headers."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from tests.fakes.oauth import OAuthServer
from tests.fakes.server import Answer, FakePlatform, Received, cursor, offset_of, page_of


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> dict:
    return {"title": title, "detail": detail, "type": kind, "status": status}


class FakeX(OAuthServer, FakePlatform):
    """X API v2, and its OAuth 2.0 server: authorize at /i/oauth2/authorize (PKCE), tokens at
    /2/oauth2/token (Basic client auth; 2-hour access tokens; single-use refresh tokens)."""
    name = "x"
    reset_in = 120  # seconds until x-rate-limit-reset in a 429
    authorize_path = "/i/oauth2/authorize"
    token_path = "/2/oauth2/token"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.oauth_init()
        self.tweets: list[dict] = []  # {"id", "text", "token", "created_at"}
        self._texts: set[tuple[str | None, str]] = set()  # (token, text): X refuses a repeat
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
        with self._lock:
            if (request.token(), text) in self._texts:
                return self.failure("duplicate", request)
            self._texts.add((request.token(), text))
            tweet = {"id": self.new_id(), "text": text, "token": request.token(),
                     "created_at": datetime.now(timezone.utc)}
            self.tweets.append(tweet)
        return Answer(201, {"data": {"id": tweet["id"], "text": text,
                                     "edit_history_tweet_ids": [tweet["id"]]}})

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
        data = [{"id": t["id"], "text": t["text"],
                 "created_at": t["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                 "edit_history_tweet_ids": [t["id"]]}
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
