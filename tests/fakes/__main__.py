"""Run the fake platforms until Ctrl-C and print the settings that point the worker at them:

    python -m tests.fakes [--delay 0.25] [--x-port 8701 --graph-port 8702 --linkedin-port 8703
                           --bluesky-port 8704 --mastodon-port 8705 --threads-port 8706]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import threading

from tests.fakes import running_fakes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--x-port", type=int, default=8701)
    parser.add_argument("--graph-port", type=int, default=8702)
    parser.add_argument("--linkedin-port", type=int, default=8703)
    parser.add_argument("--bluesky-port", type=int, default=8704)
    parser.add_argument("--mastodon-port", type=int, default=8705)
    parser.add_argument("--threads-port", type=int, default=8706)
    args = parser.parse_args()
    ports = (args.x_port, args.graph_port, args.linkedin_port, args.bluesky_port,
             args.mastodon_port, args.threads_port)
    with contextlib.ExitStack() as stack:
        try:
            fakes = stack.enter_context(running_fakes(
                args.delay, args.host, ports))
        except OSError as exc:
            sys.exit(f"python -m tests.fakes: cannot listen on {args.host} ports "
                     f"{', '.join(map(str, ports))}: {exc.strerror}; stop what holds them or "
                     "pick others with --x-port, --graph-port, ... (see --help)")
        print("# fake X, Graph (Facebook, Instagram), LinkedIn, Bluesky, Mastodon (instance "
              f"{fakes.mastodon.base_url}) and Threads are up; point the worker at them:")
        for name, value in fakes.env().items():
            print(f"export {name}={value}")
        print("# every request they receive is printed below; Ctrl-C stops them", flush=True)
        _echo(fakes)


def _echo(fakes) -> None:
    seen = {fake.name: 0 for fake in fakes.all()}
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            for fake in fakes.all():
                for request in fake.received[seen[fake.name]:]:
                    print(f"{fake.name}: {request.method} {request.path}", flush=True)
                seen[fake.name] = len(fake.received)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
