"""One module per platform, the error taxonomy they map into, and the registry the worker uses."""
from __future__ import annotations

from worker.publishers.base import Publisher
from worker.publishers.sandbox import SandboxPublisher


def default_publishers() -> dict[str, Publisher]:
    """The publisher for each platform this build can post to, by platform name."""
    return {"sandbox": SandboxPublisher()}
