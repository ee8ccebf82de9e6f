"""Local stand-ins for X, Meta's Graph API (Facebook Pages, Instagram) and LinkedIn: real HTTP
servers on 127.0.0.1 that speak each platform's protocol, errors included, and record what
they received. `python -m tests.fakes` runs them for a walkthrough (see the README).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from tests.fakes.graph import FakeGraph
from tests.fakes.linkedin import FakeLinkedIn
from tests.fakes.server import KINDS, Answer, FakePlatform, Received
from tests.fakes.x import FakeX

__all__ = ["KINDS", "Answer", "FakeGraph", "FakeLinkedIn", "FakePlatform", "FakeX", "Fakes",
           "Received", "running_fakes"]


@dataclass
class Fakes:
    x: FakeX
    graph: FakeGraph
    linkedin: FakeLinkedIn

    def env(self) -> dict[str, str]:
        """The settings that point the worker at these fakes."""
        return {"X_API_BASE_URL": self.x.base_url, "GRAPH_API_BASE_URL": self.graph.base_url,
                "GRAPH_API_VERSION": self.graph.version,
                "LINKEDIN_API_BASE_URL": self.linkedin.base_url,
                # the connect flows: the fakes' authorize pages and the app credentials they know
                "X_AUTHORIZE_URL": self.x.authorize_url, "X_CLIENT_ID": self.x.client_id,
                "X_CLIENT_SECRET": self.x.client_secret,
                "LINKEDIN_OAUTH_BASE_URL": self.linkedin.oauth_base_url,
                "LINKEDIN_CLIENT_ID": self.linkedin.client_id,
                "LINKEDIN_CLIENT_SECRET": self.linkedin.client_secret,
                "FACEBOOK_DIALOG_URL": f"{self.graph.base_url}/{self.graph.version}/dialog/oauth",
                "META_APP_ID": self.graph.app_id, "META_APP_SECRET": self.graph.app_secret}

    def all(self) -> tuple[FakePlatform, ...]:
        return (self.x, self.graph, self.linkedin)


@contextmanager
def running_fakes(delay: float = 0.0, host: str = "127.0.0.1",
                  ports: tuple[int, int, int] = (0, 0, 0)) -> Iterator[Fakes]:
    """The three fakes, started; every answer `delay` seconds late. Ports 0: any free port."""
    fakes = Fakes(FakeX(delay, host, ports[0]), FakeGraph(delay, host, ports[1]),
                  FakeLinkedIn(delay, host, ports[2]))
    for fake in fakes.all():
        fake.start()
    try:
        yield fakes
    finally:
        for fake in fakes.all():
            fake.stop()
