"""Settings: every knob the scheduler has, read from environment variables in one place.

`Settings.from_env()` validates each value and raises `ConfigError` naming the variable,
so a typo in a crontab is one clear line instead of a traceback halfway through a run.
"""
from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass, field, fields
from typing import Mapping, cast
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///scheduler.db"
ENVIRONMENTS = ("development", "test", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CLOCK_SLACK = 1.0  # seconds the workers' clocks may disagree (NTP keeps them within ms)
# The drivers we ship and test. Anything else is refused up front, not at the first query.
_DRIVERS = {"sqlite": "sqlite", "mysql": "mysql+pymysql", "mysql+pymysql": "mysql+pymysql",
            "mariadb": "mariadb+pymysql", "mariadb+pymysql": "mariadb+pymysql",
            "postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg",
            "postgres": "postgresql+psycopg"}


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    lock_timeout: int = 600          # seconds a claim may stay `processing` before recovery
    max_attempts: int = 3            # attempts per post, counted at claim time
    batch_size: int = 20             # rows claimed per claim transaction, at most
    # publish threads per worker process: a platform answers in ~0.25-1 s, so the threads mostly
    # wait; 96 drains a 10,000-post burst in ~28 s on 2 cores (bench/burst.py)
    concurrency: int = 96
    run_budget: float = 50.0         # seconds a run keeps claiming; below cron's 60
    # seconds a --loop run keeps polling: past the next cron start, so no second goes unwatched
    loop_budget: float = 62.0
    retry_backoff: int = 60          # seconds before attempt 2; doubles for each attempt after
    missed_after: int = 48 * 3600    # a post overdue by more than this is `missed`, not sent late
    poll_interval: float = 1.0       # seconds between polls in --loop mode
    worker_id: str = field(default_factory=default_worker_id)
    environment: str = "development"  # development | test | production
    secret_key: str = field(default="", repr=False)  # Fernet key sealing social access tokens
    # comma-separated earlier keys: they still open tokens, never seal (`secret-key rotate`)
    old_secret_keys: str = field(default="", repr=False)
    max_body_bytes: int = 1024 * 1024  # larger request bodies get 413
    # POST /imports: a larger CSV gets 413, found by counting while it is read (10,000 rows of
    # 280-character posts are about 3.5 MB)
    import_max_bytes: int = 20 * 1024 * 1024
    metrics_token: str = field(default="", repr=False)  # if set, /metrics wants it as Bearer
    trusted_proxies: int = 0  # reverse proxies in front whose X-Forwarded-* headers are believed
    # The platforms' APIs: real hosts by default; tests and demos point them at local fakes.
    x_api_base_url: str = "https://api.x.com"
    graph_api_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v25.0"
    linkedin_api_base_url: str = "https://api.linkedin.com"
    linkedin_version: str = "202605"  # YYYYMM, sent as the LinkedIn-Version header
    http_connect_timeout: float = 5.0   # seconds to connect to a platform
    http_read_timeout: float = 30.0     # seconds to wait for a platform's answer
    instagram_poll_interval: float = 2.0  # seconds between checks of a media container
    instagram_poll_attempts: int = 15     # checks per attempt before deferring the post
    retention_days: int = 90  # history older than this is pruned once a day by a worker; 0: never
    webhook_timeout: float = 10.0  # seconds to connect to, and then to wait for, a webhook receiver
    webhook_allow_private: int = 0  # 1: webhook URLs may resolve to private/loopback addresses
    media_dir: str = "media"  # where POST /media stores files (and the worker its downloads)
    media_max_bytes: int = 1024 ** 3  # an upload or a fetched mediaUrl larger than this is refused
    media_allow_private: int = 0  # 1: mediaUrls may resolve to private/loopback addresses
    media_fetch_timeout: float = 30.0  # seconds to connect to, then between bytes of, a mediaUrl
    media_url_ttl: int = 3600  # seconds a signed media URL stays valid
    log_level: str = "INFO"  # DEBUG, INFO, WARNING or ERROR
    sql_dir: str = ""  # where sql/ is, when neither a checkout nor `pip install .` put it in place
    # Connect flows (OAuth): this scheduler's address as browsers reach it (redirect URIs), the
    # platforms' authorize pages and the app credentials registered with each platform.
    # e.g. https://scheduler.example.com; needed to connect by OAuth and for signed media URLs
    public_url: str = ""
    x_authorize_url: str = "https://x.com/i/oauth2/authorize"
    x_client_id: str = ""
    x_client_secret: str = field(default="", repr=False)
    linkedin_oauth_base_url: str = "https://www.linkedin.com/oauth/v2"
    linkedin_client_id: str = ""
    linkedin_client_secret: str = field(default="", repr=False)
    # Meta: the Facebook Login dialog (a full URL: Graph's version is in its path) and the app
    facebook_dialog_url: str = "https://www.facebook.com/v25.0/dialog/oauth"
    meta_app_id: str = ""
    meta_app_secret: str = field(default="", repr=False)
    # Threads: its API host (login, tokens, publishing), its authorization window and its app
    threads_api_base_url: str = "https://graph.threads.net"
    threads_authorize_url: str = "https://threads.net/oauth/authorize"
    threads_app_id: str = ""
    threads_app_secret: str = field(default="", repr=False)
    # Bluesky: the PDS that app passwords sign in to (an account's own PDS, if createSession
    # names another, is kept with the account)
    bluesky_pds_url: str = "https://bsky.social"
    # Mastodon: the name this scheduler registers on each instance (POST /api/v1/apps)
    mastodon_app_name: str = "Post Scheduler"
    evergreen_min_gap: int = 30  # days: evergreen rotation never repeats a text on an account sooner

    # name of the environment variable for each field, and how to read it
    ENV = {
        "database_url": "DATABASE_URL",
        "lock_timeout": "SCHEDULER_LOCK_TIMEOUT",
        "max_attempts": "SCHEDULER_MAX_ATTEMPTS",
        "batch_size": "SCHEDULER_BATCH_SIZE",
        "concurrency": "SCHEDULER_CONCURRENCY",
        "run_budget": "SCHEDULER_RUN_BUDGET",
        "loop_budget": "SCHEDULER_LOOP_BUDGET",
        "retry_backoff": "SCHEDULER_RETRY_BACKOFF",
        "missed_after": "SCHEDULER_MISSED_AFTER",
        "poll_interval": "SCHEDULER_POLL_INTERVAL",
        "worker_id": "SCHEDULER_WORKER_ID",
        "environment": "SCHEDULER_ENV",
        "secret_key": "SCHEDULER_SECRET_KEY",
        "old_secret_keys": "SCHEDULER_OLD_SECRET_KEYS",
        "max_body_bytes": "SCHEDULER_MAX_BODY_BYTES",
        "import_max_bytes": "SCHEDULER_IMPORT_MAX_BYTES",
        "metrics_token": "SCHEDULER_METRICS_TOKEN",
        "trusted_proxies": "SCHEDULER_TRUSTED_PROXIES",
        "x_api_base_url": "X_API_BASE_URL",
        "graph_api_base_url": "GRAPH_API_BASE_URL",
        "graph_api_version": "GRAPH_API_VERSION",
        "linkedin_api_base_url": "LINKEDIN_API_BASE_URL",
        "linkedin_version": "LINKEDIN_VERSION",
        "http_connect_timeout": "SCHEDULER_HTTP_CONNECT_TIMEOUT",
        "http_read_timeout": "SCHEDULER_HTTP_READ_TIMEOUT",
        "instagram_poll_interval": "SCHEDULER_INSTAGRAM_POLL_INTERVAL",
        "instagram_poll_attempts": "SCHEDULER_INSTAGRAM_POLL_ATTEMPTS",
        "retention_days": "SCHEDULER_RETENTION_DAYS",
        "webhook_timeout": "SCHEDULER_WEBHOOK_TIMEOUT",
        "webhook_allow_private": "SCHEDULER_WEBHOOK_ALLOW_PRIVATE",
        "media_dir": "SCHEDULER_MEDIA_DIR",
        "media_max_bytes": "SCHEDULER_MEDIA_MAX_BYTES",
        "media_allow_private": "SCHEDULER_MEDIA_ALLOW_PRIVATE",
        "media_fetch_timeout": "SCHEDULER_MEDIA_FETCH_TIMEOUT",
        "media_url_ttl": "SCHEDULER_MEDIA_URL_TTL",
        "log_level": "SCHEDULER_LOG_LEVEL",
        "sql_dir": "SCHEDULER_SQL_DIR",
        "public_url": "SCHEDULER_PUBLIC_URL",
        "x_authorize_url": "X_AUTHORIZE_URL",
        "x_client_id": "X_CLIENT_ID",
        "x_client_secret": "X_CLIENT_SECRET",
        "linkedin_oauth_base_url": "LINKEDIN_OAUTH_BASE_URL",
        "linkedin_client_id": "LINKEDIN_CLIENT_ID",
        "linkedin_client_secret": "LINKEDIN_CLIENT_SECRET",
        "facebook_dialog_url": "FACEBOOK_DIALOG_URL",
        "meta_app_id": "META_APP_ID",
        "meta_app_secret": "META_APP_SECRET",
        "threads_api_base_url": "THREADS_API_BASE_URL",
        "threads_authorize_url": "THREADS_AUTHORIZE_URL",
        "threads_app_id": "THREADS_APP_ID",
        "threads_app_secret": "THREADS_APP_SECRET",
        "bluesky_pds_url": "BLUESKY_PDS_URL",
        "mastodon_app_name": "MASTODON_APP_NAME",
        "evergreen_min_gap": "SCHEDULER_EVERGREEN_MIN_GAP",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        settings = cls.only_from_env(*(f.name for f in fields(cls)), environ=environ,
                                     **overrides)
        settings.validate()
        return settings

    @classmethod
    def only_from_env(cls, *names: str, environ: Mapping[str, str] | None = None,
                      **overrides) -> "Settings":
        """The defaults, with `names` read from the environment and not cross-checked: for what
        is needed before, or without, the whole configuration (the log level, the key ring)."""
        environ = os.environ if environ is None else environ
        kinds = {f.name: cast(str, f.type) for f in fields(cls)}  # strings: postponed annotations
        values = {}
        for name in names:
            var = cls.ENV[name]
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            values[name] = _parse(var, raw.strip(), kinds[name])
        return cls(**{**values, **overrides})

    def validate(self) -> None:
        normalize_database_url(self.database_url)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{self.ENV[f.name]} must be a finite number, got {value}")
            if f.name in _MAY_BE_ZERO and value < 0:
                raise ConfigError(f"{self.ENV[f.name]} must be 0 or more, got {value}")
            if isinstance(value, (int, float)) and value <= 0 and f.name not in _MAY_BE_ZERO:
                raise ConfigError(f"{self.ENV[f.name]} must be greater than 0, got {value}")
        for name in ("webhook_allow_private", "media_allow_private"):
            if getattr(self, name) not in (0, 1):
                raise ConfigError(f"{self.ENV[name]} must be 0 or 1, got {getattr(self, name)}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"SCHEDULER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                              f"got {self.log_level!r}")
        if not self.worker_id:
            raise ConfigError("SCHEDULER_WORKER_ID must not be empty")
        if self.environment not in ENVIRONMENTS:
            raise ConfigError(f"SCHEDULER_ENV must be one of {', '.join(ENVIRONMENTS)}, "
                              f"got {self.environment!r}")
        _check_platform_settings(self)
        _check_lock_timeout(self)
        if self.environment != "development" and not self.secret_key:
            # The development key is public (it is in this source): real tokens need a real key.
            raise ConfigError(f"SCHEDULER_SECRET_KEY must be set when SCHEDULER_ENV="
                              f"{self.environment}: `scheduler secret-key` prints a new one")

    @property
    def url(self) -> URL:
        return normalize_database_url(self.database_url)

    @property
    def claim_margin(self) -> float:
        """No request starts for a claim older than lock_timeout minus this: one request's worst
        case (connect + read timeouts) and CLOCK_SLACK for the hosts' clocks."""
        return self.http_connect_timeout + self.http_read_timeout + CLOCK_SLACK

    @property
    def publish_worst_case(self) -> float:
        """The longest one publish may need between two requests' checks: a request, and
        Instagram's container polling."""
        return (self.http_connect_timeout + self.http_read_timeout
                + self.instagram_poll_interval * self.instagram_poll_attempts)


def _check_lock_timeout(settings: Settings) -> None:
    """A live worker's publish must fit inside its lock, or another worker takes it mid-way."""
    needed = settings.publish_worst_case + settings.claim_margin
    if settings.lock_timeout < needed:
        raise ConfigError(
            f"SCHEDULER_LOCK_TIMEOUT ({settings.lock_timeout} s) is too short for a publish: "
            f"SCHEDULER_HTTP_CONNECT_TIMEOUT + SCHEDULER_HTTP_READ_TIMEOUT "
            f"({settings.http_connect_timeout:g} + {settings.http_read_timeout:g} s) twice, "
            f"Instagram's polling ({settings.instagram_poll_attempts} x "
            f"{settings.instagram_poll_interval:g} s) and {CLOCK_SLACK:g} s need {needed:g} s; "
            f"raise SCHEDULER_LOCK_TIMEOUT to at least {math.ceil(needed)} or lower "
            "SCHEDULER_HTTP_READ_TIMEOUT")


# 0 proxies trusted; 0: no pruning; 0: webhook URLs must resolve to public addresses
_MAY_BE_ZERO = {"trusted_proxies", "retention_days", "webhook_allow_private", "media_allow_private"}


# Settings that must be http(s) URLs; a platform's module adds its own.
URL_SETTINGS = ["x_api_base_url", "graph_api_base_url", "linkedin_api_base_url", "public_url",
                "x_authorize_url", "linkedin_oauth_base_url", "facebook_dialog_url",
                "threads_api_base_url", "threads_authorize_url", "bluesky_pds_url"]


def _check_platform_settings(settings: Settings) -> None:
    for name in URL_SETTINGS:
        if name == "public_url" and not settings.public_url:
            continue  # unset: the connect flows say so when asked
        parts = urlsplit(getattr(settings, name))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{Settings.ENV[name]} must be an http(s) URL such as "
                              f"https://example.com, got {getattr(settings, name)!r}")
    if not re.fullmatch(r"v\d+\.\d+", settings.graph_api_version):
        raise ConfigError(f"GRAPH_API_VERSION must look like v25.0, got {settings.graph_api_version!r}")
    if not re.fullmatch(r"20\d{2}(0[1-9]|1[0-2])", settings.linkedin_version):
        raise ConfigError(f"LINKEDIN_VERSION must be a month as YYYYMM (e.g. 202605), "
                          f"got {settings.linkedin_version!r}")


def _parse(var: str, raw: str, kind: str):
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var} must be a whole number, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{var} must be a number, got {raw!r}") from None
    return raw


def normalize_database_url(raw: str) -> URL:
    """Parse DATABASE_URL; plain mysql:// means PyMySQL and postgresql:// psycopg 3, the drivers we ship."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            f"DATABASE_URL is not a database URL: {raw!r} "
            "(expected e.g. sqlite:///scheduler.db or mysql+pymysql://user:pass@host:3306/db)"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(
            f"DATABASE_URL uses {url.drivername!r}; supported: sqlite, mysql+pymysql, "
            "mariadb+pymysql, postgresql+psycopg (e.g. postgresql://user:pass@host:5432/db)"
        )
    url = url.set(drivername=driver)
    if driver != "sqlite" and not url.database:
        raise ConfigError("DATABASE_URL names no database (add /DBNAME after the host)")
    return url
