"""One module per platform, the error taxonomy they map into, and the registry the worker uses."""
from __future__ import annotations

from app.config import Settings
from worker.publishers.base import Publisher
from worker.publishers.bluesky import BlueskyPublisher
from worker.publishers.facebook import FacebookPublisher
from worker.publishers.http import HttpClient
from worker.publishers.instagram import InstagramPublisher
from worker.publishers.linkedin import LinkedInPublisher
from worker.publishers.mastodon import MastodonPublisher
from worker.publishers.sandbox import SandboxPublisher
from worker.publishers.threads import ThreadsPublisher
from worker.publishers.x import XPublisher


def default_publishers(settings: Settings) -> dict[str, Publisher]:
    """The publisher for each platform this build can post to, by platform name. They share one
    HttpClient, so each worker thread has one pooled session for all of them."""
    http = HttpClient.from_settings(settings)
    publishers: list[Publisher] = [SandboxPublisher(), XPublisher(settings, http),
                  FacebookPublisher(settings, http), InstagramPublisher(settings, http),
                  LinkedInPublisher(settings, http), BlueskyPublisher(settings, http),
                  MastodonPublisher(settings, http), ThreadsPublisher(settings, http)]
    return {p.platform: p for p in publishers}
