"""OAuth connect flows and token refresh: the provider interface (base.py), the registry of
providers by platform (registry.py), one module per platform, and the rotation-safe refresh
(refresh.py). See docs/architecture.md, "Accounts: connect and refresh"."""
