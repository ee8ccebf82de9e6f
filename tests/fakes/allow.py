"""A user at a fake platform's authorize page, from a shell: `python -m tests.fakes.allow URL
[--deny]` clicks Allow (or Cancel) and prints the URL the platform sends the browser back to."""
from __future__ import annotations

import argparse

from tests.fakes.consent import authorize


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.allow", description=__doc__)
    parser.add_argument("url", help="the authorizeUrl that POST /connect/{platform} answered")
    parser.add_argument("--deny", action="store_true", help="click Cancel instead")
    args = parser.parse_args()
    print(authorize(args.url, allow=not args.deny))


if __name__ == "__main__":
    main()
