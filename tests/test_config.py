"""Settings: defaults, one environment variable per knob, and refusals that name the variable."""
from __future__ import annotations

import os
import re
import socket

import pytest

from app.config import DEFAULT_DATABASE_URL, Settings, normalize_database_url
from app.errors import ConfigError

# (environment variable, field, raw value, parsed value)
EVERY_VARIABLE = [
    ("DATABASE_URL", "database_url", "sqlite:////tmp/other.db", "sqlite:////tmp/other.db"),
    ("SCHEDULER_LOCK_TIMEOUT", "lock_timeout", "900", 900),
    ("SCHEDULER_MAX_ATTEMPTS", "max_attempts", "5", 5),
    ("SCHEDULER_BATCH_SIZE", "batch_size", "7", 7),
    ("SCHEDULER_CONCURRENCY", "concurrency", "3", 3),
    ("SCHEDULER_RUN_BUDGET", "run_budget", "12.5", 12.5),
    ("SCHEDULER_LOOP_BUDGET", "loop_budget", "61", 61.0),
    ("SCHEDULER_RETRY_BACKOFF", "retry_backoff", "30", 30),
    ("SCHEDULER_MISSED_AFTER", "missed_after", "3600", 3600),
    ("SCHEDULER_POLL_INTERVAL", "poll_interval", "0.25", 0.25),
    ("SCHEDULER_WORKER_ID", "worker_id", "cron-box-1", "cron-box-1"),
    ("SCHEDULER_ENV", "environment", "development", "development"),
    ("SCHEDULER_SECRET_KEY", "secret_key", "x" * 44, "x" * 44),
    ("SCHEDULER_MAX_BODY_BYTES", "max_body_bytes", "4096", 4096),
    ("SCHEDULER_IMPORT_MAX_BYTES", "import_max_bytes", "1000000", 1000000),
    ("SCHEDULER_METRICS_TOKEN", "metrics_token", "scrape-me", "scrape-me"),
    ("SCHEDULER_TRUSTED_PROXIES", "trusted_proxies", "1", 1),
    ("X_API_BASE_URL", "x_api_base_url", "http://127.0.0.1:9001", "http://127.0.0.1:9001"),
    ("GRAPH_API_BASE_URL", "graph_api_base_url", "http://127.0.0.1:9002", "http://127.0.0.1:9002"),
    ("GRAPH_API_VERSION", "graph_api_version", "v24.0", "v24.0"),
    ("LINKEDIN_API_BASE_URL", "linkedin_api_base_url", "http://localhost:9003", "http://localhost:9003"),
    ("LINKEDIN_VERSION", "linkedin_version", "202601", "202601"),
    ("SCHEDULER_HTTP_CONNECT_TIMEOUT", "http_connect_timeout", "2.5", 2.5),
    ("SCHEDULER_HTTP_READ_TIMEOUT", "http_read_timeout", "10", 10.0),
    ("SCHEDULER_INSTAGRAM_POLL_INTERVAL", "instagram_poll_interval", "0.5", 0.5),
    ("SCHEDULER_INSTAGRAM_POLL_ATTEMPTS", "instagram_poll_attempts", "4", 4),
    ("SCHEDULER_RETENTION_DAYS", "retention_days", "30", 30),
    ("SCHEDULER_OLD_SECRET_KEYS", "old_secret_keys", "a" * 44 + "," + "b" * 44, "a" * 44 + "," + "b" * 44),
    ("SCHEDULER_WEBHOOK_TIMEOUT", "webhook_timeout", "3", 3.0),
    ("SCHEDULER_WEBHOOK_ALLOW_PRIVATE", "webhook_allow_private", "1", 1),
    ("SCHEDULER_MEDIA_DIR", "media_dir", "/var/lib/scheduler/media", "/var/lib/scheduler/media"),
    ("SCHEDULER_MEDIA_MAX_BYTES", "media_max_bytes", "1000000", 1000000),
    ("SCHEDULER_MEDIA_ALLOW_PRIVATE", "media_allow_private", "1", 1),
    ("SCHEDULER_MEDIA_FETCH_TIMEOUT", "media_fetch_timeout", "5", 5.0),
    ("SCHEDULER_MEDIA_URL_TTL", "media_url_ttl", "600", 600),
    ("SCHEDULER_PUBLIC_URL", "public_url", "https://scheduler.example.com", "https://scheduler.example.com"),
    ("X_AUTHORIZE_URL", "x_authorize_url", "http://127.0.0.1:9/authorize", "http://127.0.0.1:9/authorize"),
    ("X_CLIENT_ID", "x_client_id", "x-client", "x-client"),
    ("X_CLIENT_SECRET", "x_client_secret", "x-secret", "x-secret"),
    ("LINKEDIN_OAUTH_BASE_URL", "linkedin_oauth_base_url", "http://127.0.0.1:9/oauth/v2", "http://127.0.0.1:9/oauth/v2"),
    ("LINKEDIN_CLIENT_ID", "linkedin_client_id", "li-client", "li-client"),
    ("LINKEDIN_CLIENT_SECRET", "linkedin_client_secret", "li-secret", "li-secret"),
    ("FACEBOOK_DIALOG_URL", "facebook_dialog_url", "http://127.0.0.1:9/v25.0/dialog/oauth", "http://127.0.0.1:9/v25.0/dialog/oauth"),
    ("META_APP_ID", "meta_app_id", "1234", "1234"),
    ("META_APP_SECRET", "meta_app_secret", "meta-secret", "meta-secret"),
    ("THREADS_API_BASE_URL", "threads_api_base_url", "http://127.0.0.1:9", "http://127.0.0.1:9"),
    ("THREADS_AUTHORIZE_URL", "threads_authorize_url", "http://127.0.0.1:9/oauth/authorize", "http://127.0.0.1:9/oauth/authorize"),
    ("THREADS_APP_ID", "threads_app_id", "5678", "5678"),
    ("THREADS_APP_SECRET", "threads_app_secret", "threads-secret", "threads-secret"),
    ("BLUESKY_PDS_URL", "bluesky_pds_url", "http://127.0.0.1:9", "http://127.0.0.1:9"),
    ("MASTODON_APP_NAME", "mastodon_app_name", "Acme Scheduler", "Acme Scheduler"),
    ("SCHEDULER_LOG_LEVEL", "log_level", "DEBUG", "DEBUG"),
    ("SCHEDULER_SQL_DIR", "sql_dir", "/opt/scheduler/sql", "/opt/scheduler/sql"),
    ("SCHEDULER_EVERGREEN_MIN_GAP", "evergreen_min_gap", "14", 14),
]
NUMERIC = [(var, name) for var, name, _, parsed in EVERY_VARIABLE
           if isinstance(parsed, (int, float))]
ZERO_MEANS_NONE = {"trusted_proxies", "retention_days", "webhook_allow_private",
                   "media_allow_private"}  # 0 proxies trusted; 0: no pruning; 0: public webhook URLs only
WHOLE = [(var, name) for var, name, _, parsed in EVERY_VARIABLE if isinstance(parsed, int)]


def test_defaults_from_an_empty_environment():
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///scheduler.db"
    assert settings.lock_timeout == 600
    assert settings.max_attempts == 3
    assert settings.batch_size == 20
    assert settings.concurrency == 96
    assert settings.run_budget == 50.0
    assert settings.retry_backoff == 60
    assert settings.missed_after == 48 * 3600
    assert settings.poll_interval == 1.0
    assert settings.worker_id == f"{socket.gethostname()}-{os.getpid()}"
    assert settings.url.drivername == "sqlite"
    assert settings.url.database == "scheduler.db"


def test_every_field_has_its_environment_variable():
    assert sorted(Settings.ENV.values()) == sorted(var for var, *_ in EVERY_VARIABLE)


@pytest.mark.parametrize("var,name,raw,parsed", EVERY_VARIABLE)
def test_each_variable_is_read(var, name, raw, parsed):
    settings = Settings.from_env({var: raw})
    assert getattr(settings, name) == parsed
    assert type(getattr(settings, name)) is type(parsed)
    # and only that field moved
    defaults = Settings.from_env({}, worker_id=settings.worker_id if name != "worker_id" else "w")
    for other in Settings.ENV:
        if other not in (name, "worker_id"):
            assert getattr(settings, other) == getattr(defaults, other)


def test_all_variables_together_and_surrounding_spaces():
    environ = {var: f"  {raw} " for var, _, raw, _ in EVERY_VARIABLE}
    settings = Settings.from_env(environ)
    for _, name, _, parsed in EVERY_VARIABLE:
        assert getattr(settings, name) == parsed


def test_blank_values_mean_the_default():
    settings = Settings.from_env({"SCHEDULER_BATCH_SIZE": "", "DATABASE_URL": "   "})
    assert settings.batch_size == 20
    assert settings.database_url == DEFAULT_DATABASE_URL


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("SCHEDULER_MAX_ATTEMPTS", "9")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    settings = Settings.from_env()
    assert settings.max_attempts == 9
    assert settings.database_url == "sqlite:///from-env.db"


def test_overrides_win_over_the_environment_and_are_validated():
    assert Settings.from_env({"SCHEDULER_RUN_BUDGET": "10"}, run_budget=3.0).run_budget == 3.0
    with pytest.raises(ConfigError, match="SCHEDULER_RUN_BUDGET"):
        Settings.from_env({}, run_budget=0.0)


@pytest.mark.parametrize("var,name", [(v, n) for v, n in NUMERIC if n not in ZERO_MEANS_NONE])
@pytest.mark.parametrize("raw", ["0", "-1"])
def test_zero_and_negative_values_are_refused(var, name, raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({var: raw})
    message = str(info.value)
    assert var in message
    assert "greater than 0" in message
    assert "\n" not in message


def test_zero_trusted_proxies_means_none_and_a_negative_count_is_refused():
    assert Settings.from_env({"SCHEDULER_TRUSTED_PROXIES": "0"}).trusted_proxies == 0
    with pytest.raises(ConfigError, match="SCHEDULER_TRUSTED_PROXIES must be 0 or more"):
        Settings.from_env({"SCHEDULER_TRUSTED_PROXIES": "-1"})


def test_retention_days_zero_turns_pruning_off_and_negative_is_refused():
    assert Settings.from_env({}).retention_days == 90
    assert Settings.from_env({"SCHEDULER_RETENTION_DAYS": "0"}).retention_days == 0
    with pytest.raises(ConfigError, match=r"^SCHEDULER_RETENTION_DAYS must be 0 or more, got -1$"):
        Settings.from_env({"SCHEDULER_RETENTION_DAYS": "-1"})


@pytest.mark.parametrize("var,name", NUMERIC)
@pytest.mark.parametrize("raw", ["abc", "10s", "1,5", "five"])
def test_non_numeric_values_are_refused(var, name, raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({var: raw})
    message = str(info.value)
    assert var in message
    assert repr(raw) in message
    assert "\n" not in message


@pytest.mark.parametrize("var,name", WHOLE)
def test_whole_number_settings_refuse_fractions(var, name):
    with pytest.raises(ConfigError, match=f"{var} must be a whole number"):
        Settings.from_env({var: "1.5"})


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN", "Infinity"])
@pytest.mark.parametrize("var", ["SCHEDULER_RUN_BUDGET", "SCHEDULER_POLL_INTERVAL"])
def test_non_finite_numbers_are_refused(var, raw):
    # float() accepts these; a NaN budget would make every run claim nothing, silently.
    with pytest.raises(ConfigError) as info:
        Settings.from_env({var: raw})
    assert var in str(info.value)


def test_empty_worker_id_override_is_refused():
    with pytest.raises(ConfigError, match="SCHEDULER_WORKER_ID"):
        Settings.from_env({}, worker_id="")


def test_config_error_is_exit_code_4():
    assert ConfigError.exit_code == 4


# -- DATABASE_URL ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw,driver,database", [
    ("sqlite:///scheduler.db", "sqlite", "scheduler.db"),
    ("sqlite:////var/lib/scheduler/queue.db", "sqlite", "/var/lib/scheduler/queue.db"),
    ("sqlite://", "sqlite", None),
    ("mysql://u:p@db.example:3306/sched", "mysql+pymysql", "sched"),
    ("mysql+pymysql://u:p@db.example/sched", "mysql+pymysql", "sched"),
    ("mariadb://u:p@db.example:3307/sched", "mariadb+pymysql", "sched"),
    ("mariadb+pymysql://u@db.example/sched", "mariadb+pymysql", "sched"),
])
def test_database_url_normalization(raw, driver, database):
    url = normalize_database_url(raw)
    assert url.drivername == driver
    assert url.database == database
    assert Settings.from_env({"DATABASE_URL": raw}).url.drivername == driver


def test_plain_mysql_keeps_user_password_host_port():
    url = normalize_database_url("mysql://sched:s3cret@db.example:3307/queue?charset=utf8mb4")
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "mysql+pymysql", "sched", "s3cret", "db.example", 3307, "queue")
    assert url.query == {"charset": "utf8mb4"}


@pytest.mark.parametrize("raw", ["postgresql://u:p@localhost:5432/sched",
                                 "postgresql+psycopg://u:p@localhost:5432/sched",
                                 "postgres://u:p@localhost:5432/sched"])
def test_postgresql_urls_mean_psycopg_3(raw):
    url = Settings.from_env({"DATABASE_URL": raw}).url
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg", "u", "p", "localhost", 5432, "sched")


@pytest.mark.parametrize("raw,driver", [
    ("postgresql+psycopg2://u:p@localhost/sched", "postgresql+psycopg2"),
    ("mssql+pyodbc://u:p@localhost/sched", "mssql+pyodbc"),
    ("mysql+mysqldb://u:p@localhost/sched", "mysql+mysqldb"),
    ("oracle://u:p@localhost/sched", "oracle"),
])
def test_unsupported_drivers_are_refused_by_name(raw, driver):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": raw})
    message = str(info.value)
    assert message.startswith("DATABASE_URL uses")
    assert repr(driver) in message
    assert "supported: sqlite, mysql+pymysql, mariadb+pymysql, postgresql+psycopg" in message
    assert "\n" not in message


@pytest.mark.parametrize("raw", ["garbage", "localhost:3306/sched", "not a url at all", "://"])
def test_garbage_is_refused(raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": raw})
    message = str(info.value)
    assert message.startswith("DATABASE_URL is not a database URL")
    assert repr(raw) in message
    assert "sqlite:///scheduler.db" in message  # says what a good one looks like
    assert "\n" not in message


@pytest.mark.parametrize("raw", ["mysql://u:p@localhost", "mysql://u:p@localhost:3306/",
                                 "mariadb://u@db.example"])
def test_mysql_url_without_a_database_is_refused(raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": raw})
    message = str(info.value)
    assert "DATABASE_URL names no database" in message
    assert "/DBNAME" in message


def test_the_password_never_appears_in_a_refusal():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": "oracle://u:hunter2@localhost/sched"})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("env", ["production", "test"])
def test_outside_development_a_secret_key_is_required(env):
    with pytest.raises(ConfigError, match=f"SCHEDULER_SECRET_KEY must be set when SCHEDULER_ENV={env}"):
        Settings.from_env({"SCHEDULER_ENV": env})
    key = "k" * 44
    assert Settings.from_env({"SCHEDULER_ENV": env, "SCHEDULER_SECRET_KEY": key}).secret_key == key


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="SCHEDULER_ENV must be one of development, test, production"):
        Settings.from_env({"SCHEDULER_ENV": "prod"})


def test_unknown_log_level_is_refused():
    with pytest.raises(ConfigError, match="SCHEDULER_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"):
        Settings.from_env({"SCHEDULER_LOG_LEVEL": "LOUD"})
    assert Settings.from_env({"SCHEDULER_LOG_LEVEL": "warning"}).log_level == "warning"


def test_secret_key_is_not_in_the_repr():
    assert "sekrit" not in repr(Settings.from_env({"SCHEDULER_SECRET_KEY": "sekrit"}))


@pytest.mark.parametrize("var,raw,says", [
    ("X_API_BASE_URL", "api.x.com", "X_API_BASE_URL must be an http(s) URL"),
    ("GRAPH_API_BASE_URL", "ftp://graph.facebook.com", "GRAPH_API_BASE_URL must be an http(s) URL"),
    ("LINKEDIN_API_BASE_URL", "https://", "LINKEDIN_API_BASE_URL must be an http(s) URL"),
    ("BLUESKY_PDS_URL", "bsky.social", "BLUESKY_PDS_URL must be an http(s) URL"),
    ("GRAPH_API_VERSION", "25", "GRAPH_API_VERSION must look like v25.0"),
    ("LINKEDIN_VERSION", "2026-05", "LINKEDIN_VERSION must be a month as YYYYMM"),
    ("LINKEDIN_VERSION", "202613", "LINKEDIN_VERSION must be a month as YYYYMM"),
    ("SCHEDULER_HTTP_READ_TIMEOUT", "0", "SCHEDULER_HTTP_READ_TIMEOUT must be greater than 0"),
])
def test_platform_settings_are_checked(var, raw, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        Settings.from_env({var: raw})


def test_platform_defaults_are_the_real_hosts():
    settings = Settings.from_env({})
    assert (settings.x_api_base_url, settings.graph_api_base_url, settings.linkedin_api_base_url) == (
        "https://api.x.com", "https://graph.facebook.com", "https://api.linkedin.com")
    assert (settings.http_connect_timeout, settings.http_read_timeout) == (5.0, 30.0)


@pytest.mark.parametrize("env", [
    {"SCHEDULER_LOCK_TIMEOUT": "1"},
    {"SCHEDULER_LOCK_TIMEOUT": "100"},  # 2 x (5 + 30) + 15 x 2 + 1 = 101 s
    {"SCHEDULER_LOCK_TIMEOUT": "600", "SCHEDULER_HTTP_READ_TIMEOUT": "300"},
    {"SCHEDULER_LOCK_TIMEOUT": "120", "SCHEDULER_INSTAGRAM_POLL_ATTEMPTS": "30"},
])
def test_a_lock_timeout_a_publish_does_not_fit_in_is_refused_naming_both(env):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert "SCHEDULER_LOCK_TIMEOUT" in message and "SCHEDULER_HTTP_READ_TIMEOUT" in message
    assert "raise SCHEDULER_LOCK_TIMEOUT to at least" in message


def test_a_lock_timeout_that_fits_is_accepted():
    assert Settings.from_env({"SCHEDULER_LOCK_TIMEOUT": "101"}).lock_timeout == 101
    short = Settings.from_env({"SCHEDULER_LOCK_TIMEOUT": "8", "SCHEDULER_HTTP_CONNECT_TIMEOUT": "0.5",
                               "SCHEDULER_HTTP_READ_TIMEOUT": "2.5",
                               "SCHEDULER_INSTAGRAM_POLL_INTERVAL": "0.1",
                               "SCHEDULER_INSTAGRAM_POLL_ATTEMPTS": "3"})
    assert short.claim_margin == 4.0  # connect + read + 1 s of clock slack
