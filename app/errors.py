"""The scheduler's exception tree: one base, mapped to exit codes (CLI) and HTTP codes (API) once."""
from __future__ import annotations


class SchedulerError(Exception):
    """Base of every error a user can cause or must act on. `str(e)` is one line saying what to do.

    `code` names the error in JSON (the API's error body, `scheduler --json` on stderr).
    """

    exit_code = 1
    code = "error"


class ConfigError(SchedulerError):
    """A setting is malformed or out of range."""

    exit_code = 4
    code = "invalid_setting"


class DatabaseUnavailable(SchedulerError):
    """The database cannot be reached, the login failed, or the server is too old."""

    exit_code = 2
    code = "database_unavailable"


class SchemaMissing(SchedulerError):
    """The tables are not there (or not up to date): `scheduler db init` fixes it."""

    exit_code = 3
    code = "schema_missing"


class NotFound(SchedulerError):
    """The thing asked for does not exist for this company."""

    exit_code = 5
    code = "not_found"


class InvalidInput(SchedulerError):
    """A value given by the user is not acceptable; the message says which and why.

    `fields` maps a request field (e.g. `content`, `mediaUrls[0]`) to what is wrong with it.
    """

    exit_code = 6
    code = "validation_failed"

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.fields = fields or {}


class Conflict(SchedulerError):
    """The thing exists but is in a state that does not allow the request."""

    exit_code = 7
    code = "conflict"


class Unauthorized(SchedulerError):
    """No API key, or one that is unknown or revoked."""

    exit_code = 1
    code = "unauthorized"


class NotConfigured(SchedulerError):
    """A feature needs settings that are not set (a platform's app credentials): the message
    names them."""

    exit_code = 4
    code = "not_configured"

    def __init__(self, message: str, settings: list[str] | None = None):
        super().__init__(message)
        self.settings = settings or []
        self.fields = {name: "not set" for name in self.settings}


class PlatformError(SchedulerError):
    """A platform could not do what a request needed (its token endpoint answered 5xx or
    nonsense, refused this scheduler's app credentials); the message says which and what next."""

    exit_code = 8
    code = "platform_error"
