"""Every `sh` block of README.md runs as written, in order, in one shell session on a temporary
copy of the checkout, as a reader following the README in one terminal would run them.

Only two things differ from a fresh clone, for speed: `python3 -m venv .venv` links the test's
own virtualenv and `pip install` does nothing (the project is installed there already). A block
under a line "*Not run by `tests/test_readme.py`: reason*" is left out and listed with its reason.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP = re.compile(r"\*Not run by `tests/test_readme\.py`: (?P<reason>[^*]+?)\.?\*")
PORTS = (5000, 8701, 8702, 8703, 8704, 8705, 8706)  # the development server's and the fakes'
BLOCK_TIMEOUT = 300
LOCK = Path("/tmp/post-scheduler-test-readme.lock")  # two runs on one machine take turns

# What some blocks must print, beyond succeeding: a distinctive part of the block -> patterns.
EXPECTED = {
    "scheduler demo && scheduler worker run --loop --budget 30 && scheduler queue stats":
        [r"(?m)^done\s+5$"],
    '\\"scheduledAt\\": \\"$AT\\"': [r'"status":\s*"published"', r'"queueStatus":\s*"done"'],
    "connect facebook": [r"(?m)^x @acme$", r"(?m)^facebook Acme Bakery$",
                         r"(?m)^instagram @acmebakery$", r"(?m)^facebook Acme Deli$",
                         r"(?m)^mastodon ", r"(?m)^threads @acme.threads$"],
    "Posted with a refreshed token": [r'"event":\s*"token_refreshed"', r'"outcome":\s*"published"',
                                      r"(?m)^done\s+1$"],
    "python -m tests.fakes &": [r"(?m)^done\s+5$", r"(?m)^failed\s+1$",
                                r"threads: POST /v1\.0/25001/threads_publish"],
}

# The shell session's prelude: the two swaps, then the state the previous block left.
PRELUDE = r'''
python3() {
  if [ "$#" -eq 3 ] && [ "$1 $2" = "-m venv" ]; then ln -sfn "$TEST_README_VENV" "$3"
  else command python3 "$@"; fi
}
pip() {
  if [ "$1" = install ]; then echo "(test_readme: 'pip $*' skipped: the test's virtualenv has the project)"
  else command pip "$@"; fi
}
'''
SAVE_STATE = r'''
{ for __name in $(compgen -v); do
    case "$__name" in
      BASH*|EUID|PPID|UID|SHELLOPTS|FUNCNAME|PIPESTATUS|GROUPS|_|RANDOM|SRANDOM|SECONDS|LINENO|\
      OPTIND|OPTARG|OPTERR|HIST*|EPOCH*|COLUMNS|LINES|DIRSTACK|PWD|OLDPWD|SHLVL|IFS|PS[0-9]|\
      COMP*|__name) ;;
      *) declare -p "$__name" ;;
    esac
  done
  declare -f
  printf 'cd %q\n' "$PWD"
} > "$TEST_README_STATE"
'''


@dataclass(frozen=True)
class Block:
    line: int        # of the opening fence
    text: str
    skip_reason: str | None


def readme_blocks(markdown: str) -> list[Block]:
    """The `sh` blocks, each with the reason it is not run, if the paragraph before it gives one."""
    lines = markdown.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() != "```sh":
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        blocks.append(Block(i + 1, "\n".join(lines[i + 1:end]) + "\n",
                            _skip_reason(_paragraph_before(lines, i))))
        i = end + 1
    return blocks


def _paragraph_before(lines: list[str], fence: int) -> str:
    """The text paragraph just above a fence, past blank lines and HTML comments."""
    j = fence - 1
    while j >= 0 and (not lines[j].strip() or lines[j].strip().startswith("<!--")):
        j -= 1
    paragraph = []
    while j >= 0 and lines[j].strip() and not lines[j].startswith("```"):
        paragraph.insert(0, lines[j])
        j -= 1
    return " ".join(paragraph)


def _skip_reason(paragraph: str) -> str | None:
    match = SKIP.search(paragraph)
    return match["reason"].strip() if match else None


def test_blocks_are_found_and_skips_are_few_and_explained():
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 10
    skipped = [b for b in blocks if b.skip_reason]
    assert all(len(b.skip_reason) > 10 for b in skipped)
    # keep this list tiny: a block that cannot run in a test is one a reader cannot check either
    assert len(skipped) <= 4, [(b.line, b.skip_reason) for b in skipped]
    for fragment in EXPECTED:
        assert any(fragment in b.text for b in blocks if not b.skip_reason), fragment
    assert not any("date -d" in b.text or "date -v" in b.text for b in blocks), \
        "GNU and BSD date differ: compute times with python3"


def test_the_parser_sees_a_skip_mark_and_only_there():
    text = ("intro\n\n*Not run by `tests/test_readme.py`: it runs forever.* More.\n\n"
            "<!-- tag -->\n```sh\nsleep infinity\n```\n\nplain\n```sh\necho hi\n```\n")
    assert [(b.text, b.skip_reason) for b in readme_blocks(text)] == [
        ("sleep infinity\n", "it runs forever"), ("echo hi\n", None)]


@pytest.fixture
def checkout(tmp_path):
    """A copy of the checkout as git sees it (tracked and new files, nothing ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    copy = tmp_path / "post-scheduler"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return copy


@pytest.fixture
def turn():
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = [p for p in PORTS if _listening(p)]
        assert not busy, (f"ports {busy} are taken: the README's servers need them; stop what "
                          "listens there and run again")
        _drop_readme_databases()
        yield


def _drop_readme_databases() -> None:
    """The README's blocks make a `scheduler` database on the local MariaDB and PostgreSQL when
    it is missing and upgrade it; one left by another checkout (another branch's revisions, which
    this code would refuse as newer) would fail them, so each run starts without it, as a reader
    on a new machine does. This test is for the project's own machines: it drops those databases."""
    subprocess.run(["mysql", "-h127.0.0.1", "-P3306", "-uroot", "--connect-timeout=5", "-e",
                    "DROP DATABASE IF EXISTS scheduler"], check=True, capture_output=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v",
                    "ON_ERROR_STOP=1", "-qc", "DROP DATABASE IF EXISTS scheduler WITH (FORCE)"],
                   check=True, capture_output=True, env={**os.environ, "PGCONNECT_TIMEOUT": "5"})


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _session_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no virtualenv active, no SCHEDULER_* setting, a home of its own."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin]
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": os.pathsep.join(path), "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb",
            "TEST_README_VENV": sys.prefix, "TEST_README_STATE": str(tmp_path / "state.sh")}


def test_every_readme_block_runs_as_written(checkout, tmp_path, turn):
    env = _session_env(tmp_path)
    groups, skipped, done = [], [], []
    try:
        for block in readme_blocks((checkout / "README.md").read_text()):
            if block.skip_reason:
                skipped.append(f"README.md:{block.line}: {block.skip_reason}")
                continue
            status, output, group = _run(block, checkout, env, tmp_path / f"block-{block.line}.out")
            groups.append(group)
            where = f"README.md:{block.line}"
            assert status == 0, f"{where} failed (exit {status}):\n{block.text}\n--- output ---\n{output[-4000:]}"
            for fragment, patterns in EXPECTED.items():
                if fragment in block.text:
                    for pattern in patterns:
                        assert re.search(pattern, output), (
                            f"{where} did not print {pattern!r}:\n{output[-4000:]}")
            done.append(block.line)
        left = [g for g in groups if _alive(g)]
        assert not left, "a block left a process running (kill the servers it starts)"
    finally:
        for group in groups:
            _stop(group)
        print(f"ran {len(done)} blocks (README.md lines {done}); not run, by reason:",
              *skipped, sep="\n  ")


def _run(block: Block, cwd: Path, env: dict, out: Path) -> tuple[int, str, int]:
    script = "\n".join([f'[ -f "$TEST_README_STATE" ] && . "$TEST_README_STATE"', PRELUDE,
                        "set -e -o pipefail", block.text, SAVE_STATE])
    with out.open("w") as sink:  # a file, not a pipe: a server left running keeps a pipe open
        proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = proc.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop(proc.pid)
            status = proc.wait()
    return status, out.read_text(errors="replace"), proc.pid


def _alive(group: int, grace: float = 5.0) -> bool:
    """Whether a live (not zombie) process of the group is left after `grace` seconds."""
    deadline = time.monotonic() + grace
    while _members(group):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)
    return False


def _members(group: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            found.append(int(stat.parent.name))
    return found


def _stop(group: int) -> None:
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
