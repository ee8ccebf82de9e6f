"""crontab.example as a user installs it (README.md, "Cron"): its path replaced by the checkout's,
the settings in ~/.config/post-scheduler/env, and each line run by /bin/sh with nothing but
what cron gives a job (HOME, LOGNAME, SHELL, PATH and the crontab's own assignments)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.crypto import new_key

ROOT = Path(__file__).resolve().parent.parent
CRONTAB = ROOT / "crontab.example"
PLACEHOLDER = "/opt/post-scheduler"  # the path README.md tells the user to replace
ENV_FILE = ".config/post-scheduler/env"
LOG_FILE = ".local/state/post-scheduler/worker.log"
CRON_LINE = re.compile(r"^(\S+\s+){5}(?P<command>.+)$")
ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")


def installed_crontab(checkout: Path) -> tuple[dict[str, str], list[str]]:
    """The crontab's variable assignments and the commands of its time lines, path replaced."""
    text = CRONTAB.read_text()
    assert PLACEHOLDER in text, "README.md tells users to replace this path: keep them in step"
    assignments, commands = {}, []
    for line in text.replace(PLACEHOLDER, str(checkout)).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if match := ASSIGNMENT.match(line):
            assignments[match["name"]] = match["value"]
        elif match := CRON_LINE.match(line):
            assert "%" not in match["command"], "cron turns % into a newline: escape it"
            commands.append(match["command"])
        else:
            raise AssertionError(f"a crontab line cron would not read: {line!r}")
    return assignments, commands


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A checkout as README.md describes it: the code and its virtualenv in .venv/."""
    root = tmp_path / "post-scheduler"
    root.mkdir()
    for name in ("app", "worker", "worker_trigger.py"):
        (root / name).symlink_to(ROOT / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    return root


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def scheduler(env: dict[str, str], *args: str) -> dict:
    """`scheduler --json ...` as a separate process with exactly these settings."""
    proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "--json", *args],
                          cwd=ROOT, env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def run_as_cron(command: str, assignments: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "LOGNAME": "scheduler", "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin",
           **assignments}
    return subprocess.run([assignments.get("SHELL", "/bin/sh"), "-c", command], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120)


def write_env_file(home: Path, **settings: str) -> None:
    path = home / ENV_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    path.chmod(0o600)


def log_events(home: Path) -> list[dict]:
    lines = (home / LOG_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_the_installed_line_runs_the_worker_with_the_env_file_and_logs(checkout, home, tmp_path):
    key = new_key()
    settings = {"SCHEDULER_ENV": "production", "SCHEDULER_SECRET_KEY": key,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'cron.db'}",
                "SCHEDULER_LOOP_BUDGET": "2"}  # a --loop run, kept short for the test
    write_env_file(home, **settings)
    scheduler(settings, "db", "init")
    company = scheduler(settings, "company", "create", "Cron Co")
    account = scheduler(settings, "account", "add", "--company", company["id"], "--platform",
                        "sandbox", "--external-id", "cron", "--token", "sealed-with-the-key")
    [post] = scheduler(settings, "post", "schedule", "--account", account["id"], "--at", "now",
                       "From cron")

    assignments, [command] = installed_crontab(checkout)
    proc = run_as_cron(command, assignments, home)
    assert proc.returncode == 0, (proc.stdout, proc.stderr, (home / LOG_FILE).read_text())
    assert proc.stdout == proc.stderr == ""  # cron would mail anything here: all of it is logged
    events = log_events(home)
    [published] = [e for e in events if e.get("event") == "post"]
    assert (published["outcome"], published["post_id"]) == ("published", post["id"])
    [summary] = [e for e in events if e.get("event") == "worker_run"]
    assert (summary["claimed"], summary["published"], summary["failed"]) == (1, 1, 0)

    # the next minute appends to the same log
    assert run_as_cron(command, assignments, home).returncode == 0
    assert len([e for e in log_events(home) if e.get("event") == "worker_run"]) == 2


def test_a_production_env_file_without_the_key_is_one_logged_error(checkout, home, tmp_path):
    write_env_file(home, SCHEDULER_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    assignments, [command] = installed_crontab(checkout)
    proc = run_as_cron(command, assignments, home)
    assert proc.returncode == 4
    log = (home / LOG_FILE).read_text()
    assert log.startswith("error: ") and "SCHEDULER_SECRET_KEY" in log


def test_a_missing_env_file_is_reported_in_the_log(checkout, home):
    assignments, [command] = installed_crontab(checkout)
    proc = run_as_cron(command, assignments, home)
    assert proc.returncode != 0
    assert ENV_FILE.rsplit("/", 1)[1] in (home / LOG_FILE).read_text()
    assert proc.stdout == ""
