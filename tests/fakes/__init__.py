"""Local stand-ins for X, Meta's Graph API (Facebook Pages, Instagram), LinkedIn, a Bluesky PDS,
a Mastodon instance and Threads: real HTTP servers on 127.0.0.1 that speak each platform's
protocol, errors included, and record what they received. `python -m tests.fakes` runs them for a walkthrough (see the README).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from tests.fakes.bluesky import FakeBluesky
from tests.fakes.graph import FakeGraph
from tests.fakes.linkedin import FakeLinkedIn
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import KINDS, Answer, FakePlatform, Received
from tests.fakes.threads import FakeThreads
from tests.fakes.x import FakeX

__all__ = ["KINDS", "Answer", "FakeBluesky", "FakeGraph", "FakeLinkedIn", "FakeMastodon",
           "FakePlatform", "FakeThreads", "FakeX", "Fakes", "Received", "running_fakes"]


@dataclass
class Fakes:
    x: FakeX
    graph: FakeGraph
    linkedin: FakeLinkedIn
    bluesky: FakeBluesky
    mastodon: FakeMastodon  # an instance: its URL is what connect takes, no setting
    threads: FakeThreads

    def env(self) -> dict[str, str]:
        """The settings that point the worker at these fakes."""
        return {"X_API_BASE_URL": self.x.base_url, "GRAPH_API_BASE_URL": self.graph.base_url,
                "GRAPH_API_VERSION": self.graph.version,
                "LINKEDIN_API_BASE_URL": self.linkedin.base_url,
                "BLUESKY_PDS_URL": self.bluesky.base_url,
                "THREADS_API_BASE_URL": self.threads.base_url,
                "THREADS_AUTHORIZE_URL": f"{self.threads.base_url}/oauth/authorize",
                "THREADS_APP_ID": self.threads.app_id, "THREADS_APP_SECRET": self.threads.app_secret,
                # the connect flows: the fakes' authorize pages and the app credentials they know
                "X_AUTHORIZE_URL": self.x.authorize_url, "X_CLIENT_ID": self.x.client_id,
                "X_CLIENT_SECRET": self.x.client_secret,
                "LINKEDIN_OAUTH_BASE_URL": self.linkedin.oauth_base_url,
                "LINKEDIN_CLIENT_ID": self.linkedin.client_id,
                "LINKEDIN_CLIENT_SECRET": self.linkedin.client_secret,
                "FACEBOOK_DIALOG_URL": f"{self.graph.base_url}/{self.graph.version}/dialog/oauth",
                "META_APP_ID": self.graph.app_id, "META_APP_SECRET": self.graph.app_secret}

    def all(self) -> tuple[FakePlatform, ...]:
        return (self.x, self.graph, self.linkedin, self.bluesky, self.mastodon, self.threads)


@contextmanager
def running_fakes(delay: float = 0.0, host: str = "127.0.0.1",
                  ports: tuple[int, ...] = ()) -> Iterator[Fakes]:
    """The fakes, started (X, Graph, LinkedIn, Bluesky, Mastodon, Threads: `ports` in that
    order, 0 or left out: any free port); every answer `delay` seconds late."""
    port = (*ports, *(0,) * 6)
    fakes = Fakes(FakeX(delay, host, port[0]), FakeGraph(delay, host, port[1]),
                  FakeLinkedIn(delay, host, port[2]), FakeBluesky(delay, host, port[3]),
                  FakeMastodon(delay, host, port[4]), FakeThreads(delay, host, port[5]))
    for fake in fakes.all():
        fake.start()
    try:
        yield fakes
    finally:
        for fake in fakes.all():
            fake.stop()
