#!/usr/bin/env python3
"""API load: POST /schedule-post under gunicorn (the README's command: 4 sync workers) against
MariaDB, driven by wrk on the same machine, every request a new post with its own content; in
the same run, a bare Flask + SQLAlchemy endpoint doing the same two inserts under the same
gunicorn and wrk, for the ratio.

The company, API key and sandbox account are made with the `scheduler` CLI, as the README shows.
Both servers run side by side on the same database; wrk drives them in turn, `--rounds` times
each, the side that goes first alternating, so a machine busy with other work slows both alike.
Afterwards every accepted post must be in post_details exactly once with its schedule row.
Prints one JSON line; targets: ratio project/reference >= 0.5, >= 500 requests/s, p99 < 100 ms.
"""
from __future__ import annotations

import json
import os
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

TARGET_RATIO = 0.5
TARGET_RPS = 500
TARGET_P99_MS = 100
SIDES = ("project", "reference")

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


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
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
    raise TimeoutError(f"gunicorn did not answer /healthz within {timeout:.0f} s")


def run_wrk(url: str, threads: int, connections: int, seconds: float, script: Path,
            key: str, account: str, at: str, run: str) -> dict:
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
                          "--timeout", "10s", "-s", str(script), url, "--", key, account, at, run],
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH "))
    return json.loads(line[len("BENCH "):])


# -- the reference --------------------------------------------------------------------------

def reference_app():
    """The bare reference, served as `gunicorn 'bench.api_load:reference_app()'`: Flask, one
    SQLAlchemy engine with its defaults, and per request the same two inserts as the project
    (post_details + post_schedule, one transaction) from the same JSON body. No authentication,
    validation, idempotency or logging: the least a Flask + SQLAlchemy endpoint can do."""
    from datetime import datetime, timezone

    from flask import Flask, request
    from sqlalchemy import column, create_engine, insert, table

    details = table("post_details", *map(column, (
        "id", "company_id", "social_account_id", "group_id", "content", "media_urls", "status",
        "created_at", "updated_at")))
    schedule = table("post_schedule", *map(column, (
        "post_detail_id", "run_at", "status", "attempts", "max_attempts", "deferrals",
        "created_at", "updated_at")))
    engine = create_engine(os.environ["DATABASE_URL"])
    company_id = os.environ["BENCH_COMPANY_ID"]
    app = Flask(__name__)

    @app.post("/schedule-post")
    def schedule_post():
        body = request.get_json()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        run_at = datetime.fromisoformat(body["scheduledAt"]).astimezone(timezone.utc)
        post_id = str(uuid.uuid4())
        with engine.begin() as conn:
            conn.execute(insert(details).values(
                id=post_id, company_id=company_id, social_account_id=body["socialAccountId"],
                group_id=str(uuid.uuid4()), content=body["content"], media_urls="[]",
                status="pending", created_at=now, updated_at=now))
            conn.execute(insert(schedule).values(
                post_detail_id=post_id, run_at=run_at.replace(tzinfo=None), status="pending",
                attempts=0, max_attempts=3, deferrals=0, created_at=now, updated_at=now))
        return {"id": post_id}, 201

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


# -- the run --------------------------------------------------------------------------------

def start_server(side: str, env: dict, workers: int, logs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    target = "app:create_app()" if side == "project" else "bench.api_load:reference_app()"
    gunicorn = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers),
                "-b", f"127.0.0.1:{port}", target]
    with open(logs / f"gunicorn-{side}.log", "ab") as log:
        server = subprocess.Popen(gunicorn, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{port}"


def workers_cpu_seconds(master: subprocess.Popen) -> float:
    """CPU seconds (user + system) used so far by gunicorn's workers, the master's children."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended meanwhile
            continue
        if int(fields[1]) == master.pid:  # fields[1] is the parent's pid
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def summarize(rounds: list[dict]) -> dict:
    """One side's measured rounds: requests/s over all of them; latency, the worst round's
    percentiles (wrk's histograms cannot be merged from its summary)."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_us"] for r in rounds) / 1e6
    errors = sum(r[k] for r in rounds for k in ("connect_errors", "read_errors",
                                                 "write_errors", "timeouts"))
    cpu_s = sum(r["workers_cpu_s"] for r in rounds)
    return {"requests": requests, "requests_per_s": round(requests / seconds, 1),
            "workers_cpu_ms_per_request": round(1000 * cpu_s / requests, 2),
            "latency_ms": {p: max(r[f"{p}_us"] for r in rounds) / 1000
                           for p in ("p50", "p90", "p99", "max")},
            "rounds": [{"requests_per_s": round(r["requests"] / (r["duration_us"] / 1e6), 1),
                        "p99_ms": r["p99_us"] / 1000} for r in rounds],
            "non_2xx": sum(r["status_errors"] for r in rounds), "socket_errors": errors}


def verify(db, run: str, side: str, runs: list[dict], connections: int) -> dict:
    """Every post wrk saw accepted is in the database once, with its pending schedule row.
    wrk stops counting at its deadline: requests in flight then (at most one per connection and
    wrk run) may have created their post without wrk seeing the answer."""
    like = f"bench {run}{side[0]}%"
    posts = db.scalar("SELECT COUNT(*) FROM post_details WHERE content LIKE %s", (like,))
    distinct = db.scalar("SELECT COUNT(DISTINCT content) FROM post_details WHERE content LIKE %s",
                         (like,))
    scheduled = db.scalar("SELECT COUNT(*) FROM post_schedule s JOIN post_details d "
                          "ON d.id = s.post_detail_id WHERE s.status = 'pending' "
                          "AND d.content LIKE %s", (like,))
    accepted = sum(r["requests"] - r["status_errors"] for r in runs)
    return {"accepted_by_wrk": accepted, "posts": posts, "distinct_contents": distinct,
            "with_pending_schedule": scheduled,
            "ok": posts == distinct == scheduled and
            accepted <= posts <= accepted + connections * len(runs)}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30, help="wrk's time on each side, "
                   "split over the rounds (default 30)")
    p.add_argument("--rounds", type=int, default=3, help="turns each side takes (default 3)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of wrk on each server "
                   "before the measured rounds, not counted (default 2)")
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    args = p.parse_args()
    if args.smoke:
        args.seconds, args.rounds, args.warmup = 2, 1, 1
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
        env["BENCH_COMPANY_ID"] = company["id"]
        script = logs / "schedule_post.lua"
        script.write_text(WRK_SCRIPT)
        run = uuid.uuid4().hex[:8]
        at = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        servers: dict[str, tuple[subprocess.Popen, str]] = {}
        measured: dict[str, list[dict]] = {side: [] for side in SIDES}
        warmups: dict[str, list[dict]] = {side: [] for side in SIDES}
        try:
            for side in SIDES:
                servers[side] = start_server(side, env, args.gunicorn_workers, logs)
            for side in SIDES:
                wait_healthy(servers[side][1], servers[side][0])

            def drive(side: str, label: str, seconds: int) -> dict:
                # Content "bench <run><p|r><label> t<thread> n<count>": unique per side and turn.
                server, url = servers[side]
                cpu_before = workers_cpu_seconds(server)
                result = run_wrk(url, args.threads, args.connections, seconds, script,
                                 company["api_key"], account["id"], at, f"{run}{side[0]}{label}")
                return {**result, "workers_cpu_s": workers_cpu_seconds(server) - cpu_before}

            for side in SIDES:
                warmups[side].append(drive(side, "w", args.warmup))
            turn_seconds = max(1, round(args.seconds / args.rounds))  # wrk takes whole seconds
            note(f"wrk -t{args.threads} -c{args.connections}, {args.rounds} x {turn_seconds} s "
                 f"a side, gunicorn -w {args.gunicorn_workers}")
            for turn in range(args.rounds):
                for side in SIDES if turn % 2 == 0 else SIDES[::-1]:
                    measured[side].append(drive(side, str(turn), turn_seconds))
                    note(f"round {turn + 1} {side}: {summarize(measured[side][-1:])['requests_per_s']} req/s")
        finally:
            stop_all([server for server, _ in servers.values()])
        results = {side: {**summarize(measured[side]),
                          "verified": verify(db, run, side, warmups[side] + measured[side],
                                             args.connections)} for side in SIDES}
    project, reference = results["project"], results["reference"]
    ratio = round(project["requests_per_s"] / reference["requests_per_s"], 3)
    by_round = [round(p["requests_per_s"] / r["requests_per_s"], 3)
                for p, r in zip(project["rounds"], reference["rounds"])]
    met_absolute = (project["requests_per_s"] >= TARGET_RPS
                    and project["latency_ms"]["p99"] < TARGET_P99_MS)
    emit({"bench": "api_load", "smoke": args.smoke, "seconds_a_side": args.seconds,
          "rounds": args.rounds, "gunicorn_workers": args.gunicorn_workers,
          "wrk": f"-t{args.threads} -c{args.connections}", "project": project,
          "reference": reference, "ratio": ratio, "ratio_by_round": by_round,
          # The reference's server CPU a request over the project's: less sensitive than req/s
          # to other work on the machine (MariaDB's and wrk's CPU are not in it).
          "workers_cpu_ratio": round(reference["workers_cpu_ms_per_request"]
                                     / project["workers_cpu_ms_per_request"], 3),
          "targets": {"ratio": TARGET_RATIO, "requests_per_s": TARGET_RPS, "p99_ms": TARGET_P99_MS},
          "met": ratio >= TARGET_RATIO and met_absolute,
          "ok": all(results[side]["verified"]["ok"] and results[side]["socket_errors"] == 0
                    and results[side]["non_2xx"] == 0 for side in SIDES)})


if __name__ == "__main__":
    main()
