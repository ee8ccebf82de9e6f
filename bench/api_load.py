#!/usr/bin/env python3
"""API load: POST /schedule-post under gunicorn (the README's command: 4 sync workers) against
MariaDB, driven by wrk on the same machine, every request a new post with its own content.

The company, API key and sandbox account are made with the `scheduler` CLI, as the README shows.
Afterwards every accepted post must be in post_details exactly once. Prints one JSON line;
targets: >= 500 requests/s, p99 < 100 ms.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT, bench_database, emit, log_folder, note, parser, stop_all, utcnow, worker_env,
)

TARGET_RPS = 500
TARGET_P99_MS = 100

# Each wrk thread numbers its requests; the run id and thread id make every content unique.
WRK_SCRIPT = r"""
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  key, account, at, run = args[1], args[2], args[3], args[4]
  headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"socialAccountId": "%s", "content": "bench %s t%d n%d", "scheduledAt": "%s"}',
    account, run, tid, counter, at)
  return wrk.format("POST", "/schedule-post", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_json(env: dict, *args: str) -> dict:
    out = subprocess.run([str(Path(sys.executable).parent / "scheduler"), "--json", *args], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("gunicorn did not answer /healthz")


def run_wrk(url: str, threads: int, connections: int, seconds: float, script: Path,
            key: str, account: str, at: str, run: str) -> dict:
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
                          "--timeout", "10s", "-s", str(script), url, "--", key, account, at, run],
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH "))
    return json.loads(line[len("BENCH "):])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    args = p.parse_args()
    if args.smoke:
        args.seconds = 2
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    from cryptography.fernet import Fernet

    with bench_database(args.database_url, "api") as db, log_folder(args.keep_logs, "api") as logs:
        env = worker_env(db, SCHEDULER_ENV="production",
                         SCHEDULER_SECRET_KEY=Fernet.generate_key().decode())
        company = cli_json(env, "company", "create", "Bench")
        account = cli_json(env, "account", "add", "--company", company["id"], "--platform",
                           "sandbox", "--external-id", f"bench-{uuid.uuid4().hex[:8]}",
                           "--token", "bench-token", "--name", "bench")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        gunicorn = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(args.gunicorn_workers),
                    "-b", f"127.0.0.1:{port}", "app:create_app()"]
        server = subprocess.Popen(gunicorn, cwd=ROOT, env=env,
                                  stdout=open(logs / "gunicorn.log", "ab"), stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, server)
            script = logs / "schedule_post.lua"
            script.write_text(WRK_SCRIPT)
            run = uuid.uuid4().hex[:8]
            at = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            note(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s POST /schedule-post, "
                 f"gunicorn -w {args.gunicorn_workers}")
            wrk = run_wrk(url, args.threads, args.connections, args.seconds, script,
                          company["api_key"], account["id"], at, run)
        finally:
            stop_all([server])
        posts = db.scalar("SELECT COUNT(*) FROM post_details")
        distinct = db.scalar("SELECT COUNT(DISTINCT content) FROM post_details")
        scheduled = db.scalar("SELECT COUNT(*) FROM post_schedule s JOIN post_details d "
                              "ON d.id = s.post_detail_id WHERE s.status = 'pending'")
    errors = sum(wrk[k] for k in ("status_errors", "connect_errors", "read_errors",
                                  "write_errors", "timeouts"))
    accepted = wrk["requests"] - wrk["status_errors"]
    rps = wrk["requests"] / (wrk["duration_us"] / 1e6)
    p99_ms = wrk["p99_us"] / 1000
    # wrk stops counting at the deadline: requests in flight then (at most one per connection)
    # may have created their post without wrk seeing the answer.
    verified = {"accepted_by_wrk": accepted, "posts": posts, "distinct_contents": distinct,
                "with_pending_schedule": scheduled,
                "ok": posts == distinct == scheduled and accepted <= posts <= accepted + args.connections}
    emit({"bench": "api_load", "smoke": args.smoke, "seconds": args.seconds,
          "gunicorn_workers": args.gunicorn_workers, "wrk": f"-t{args.threads} -c{args.connections}",
          "requests": wrk["requests"], "requests_per_s": round(rps, 1),
          "latency_ms": {"p50": wrk["p50_us"] / 1000, "p90": wrk["p90_us"] / 1000,
                         "p99": p99_ms, "max": wrk["max_us"] / 1000},
          "non_2xx": wrk["status_errors"], "socket_errors": errors - wrk["status_errors"],
          "targets": {"requests_per_s": TARGET_RPS, "p99_ms": TARGET_P99_MS},
          "met": rps >= TARGET_RPS and p99_ms < TARGET_P99_MS,
          "verified": verified, "ok": verified["ok"] and errors == 0})


if __name__ == "__main__":
    main()
