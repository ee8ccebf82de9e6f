"""Which platforms can be connected, and by which provider class. Each platform's module adds
one line here (a dotted path, imported when first asked for, so no import cycle and no cost)."""
from __future__ import annotations

from importlib import import_module

from app.errors import NotFound
from app.oauth.base import Provider, ProviderContext
from app.statuses import Platform

PROVIDERS: dict[Platform, str] = {
    Platform.X: "app.oauth.x:XProvider",
    Platform.LINKEDIN: "app.oauth.linkedin:LinkedInProvider",
    # One Facebook Login adds the Pages and their Instagram accounts: either button starts it.
    Platform.FACEBOOK: "app.oauth.meta:MetaProvider",
    Platform.INSTAGRAM: "app.oauth.meta:MetaProvider",
    Platform.THREADS: "app.oauth.threads:ThreadsProvider",
    Platform.BLUESKY: "app.oauth.bluesky:BlueskyProvider",
    Platform.MASTODON: "app.oauth.mastodon:MastodonProvider",
}


def connectable() -> list[Platform]:
    """The platforms with a provider, in the order of Platform."""
    return [p for p in Platform if p in PROVIDERS]


def provider_class(platform: str) -> type:
    try:
        module, name = PROVIDERS[Platform(platform)].split(":")
    except (ValueError, KeyError):
        names = ", ".join(connectable())
        raise NotFound(f"{platform!r} cannot be connected here: one of {names}") from None
    return getattr(import_module(module), name)


def provider_for(platform: str, ctx: ProviderContext) -> Provider:
    return provider_class(platform)(ctx)
