"""Every snippet of README.md runs as written, against a real redis-server the suite starts.

The README is parsed, not copied: a snippet edited in the README is the snippet tested here.
A quickstart worker (`taskq worker examples.quickstart:app`) runs as a subprocess for the
snippets that need one; each Python snippet runs in its own interpreter from the repository
root, as a user would paste it. Where a snippet says what it prints (`print(x)  # 5`), the
printed line is checked against that comment.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BIN = Path(sys.executable).parent
#: a hang guard for one snippet, not a timing assertion
GUARD = 60


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(README) if kind == lang]


def expected_quickstart_output() -> str:
    after = README.split("Terminal 2 prints:", 1)[1]
    match = BLOCK.search(after)
    assert match is not None and match.group(1) == ""
    return match.group(2)


def env_for(url: str) -> dict[str, str]:
    env = {**os.environ, "TASKQ_URL": url, "PYTHONPATH": str(ROOT)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def quickstart_worker(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """`taskq worker examples.quickstart:app` on the suite's redis-server, as in terminal 1."""
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "taskq"), "worker", "examples.quickstart:app"], cwd=ROOT,
                                env=env_for(redis_url), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + GUARD
        while "worker started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        yield redis_url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"quickstart worker did not stop:\n{log.read_text()}") from None
        assert code == 0, log.read_text()
        # a failed attempt's line carries its traceback (flaky fails on purpose); nothing else may
        others = [line for line in log.read_text().splitlines() if 'event="job retrying"' not in line
                  and 'event="job dead"' not in line]
        assert not any("Traceback" in line for line in others), log.read_text()


def run(argv: list[str], url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env_for(url), capture_output=True, text=True, timeout=GUARD)


def check_printed(snippet: str, stdout: str) -> None:
    """Each `print(...)  # X` line printed X, up to the first colon, comma or double space."""
    lines = snippet.splitlines()
    prints = [line for line in lines if line.lstrip().startswith("print(")]
    printed = stdout.splitlines()
    assert len(printed) == len(prints), stdout
    checked = 0
    for out, line in zip(printed, prints, strict=True):
        if "#" not in line:
            continue
        comment = line.split("#", 1)[1].strip()
        digits = re.match(r"(\d+) hex digits", comment)
        if digits:
            assert re.fullmatch(rf"[0-9a-f]{{{digits.group(1)}}}", out), (comment, out)
        else:
            assert out == re.split(r":|,|  ", comment)[0].strip(), (line, out)
        checked += 1
    assert checked  # the snippet promised something and it was checked


def test_the_readme_has_the_snippets_this_test_runs() -> None:
    assert len(blocks("python")) >= 8 and len(blocks("sh")) >= 4


def test_quickstart_prints_what_the_readme_says(quickstart_worker: str) -> None:
    done = run([sys.executable, "examples/quickstart.py"], quickstart_worker)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected_quickstart_output(), done.stdout


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_snippet_runs_as_written(index: int, quickstart_worker: str) -> None:
    snippet = blocks("python")[index]
    done = run([sys.executable, "-c", snippet], quickstart_worker)
    assert done.returncode == 0, f"{snippet}\n--- stderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    if any(line.lstrip().startswith("print(") and "#" in line for line in snippet.splitlines()):
        check_printed(snippet, done.stdout)


def cli_lines() -> list[str]:
    """The `taskq ...` commands of the README's command-line block that return by themselves
    (not `taskq worker` without --burst, nor `taskq beat`: tests/faults runs those)."""
    block = next(body for body in blocks("sh") if "taskq status" in body)
    commands = [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.startswith("taskq ")]
    return [c for c in commands if not c.startswith(("taskq worker", "taskq beat")) or "--burst" in c]


def test_cli_commands_run_as_written(quickstart_worker: str) -> None:
    commands = cli_lines()
    assert any(c.startswith("taskq dlq") for c in commands) and any("--burst" in c for c in commands)
    for command in commands:
        done = run(["bash", "-c", command], quickstart_worker)  # as pasted into a shell
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, (command, done.stderr)
        if command.startswith("taskq enqueue"):
            assert re.fullmatch(r"[0-9a-f]{32}\n", done.stdout), (command, done.stdout)
    for command in ("taskq --version", "taskq worker --help"):
        done = run(shlex.split(command), quickstart_worker)
        assert done.returncode == 0 and done.stdout, command


def test_quickstart_shell_block_starts_a_worker(tmp_path: Path) -> None:
    """Terminal 1 as written: its own redis-server on the README's port (if free), the worker."""
    block = next(body for body in blocks("sh") if "terminal 1" in body)
    port = int(re.search(r"--port (\d+)", block).group(1))  # type: ignore[union-attr]
    try:
        server = RedisServer(port=port)
    except RuntimeError:
        pytest.fail(f"port {port} of the README's quickstart is taken on this machine")
    try:
        url = re.search(r"TASKQ_URL=(\S+)", block).group(1)  # type: ignore[union-attr]
        worker = subprocess.Popen(shlex.split(block.strip().splitlines()[-1]), cwd=ROOT, env=env_for(url),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        done = run([sys.executable, "examples/quickstart.py"], url)
        worker.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = worker.communicate(timeout=GUARD)
        assert done.returncode == 0 and done.stdout == expected_quickstart_output(), done.stdout + done.stderr
        assert worker.returncode == 0 and "worker started" in out, out
    finally:
        server.stop()


def test_beat_line_runs_as_written(redis_url: str, tmp_path: Path) -> None:
    """The README's `taskq beat` line: it starts, leads, and stops cleanly on Ctrl-C."""
    block = next(body for body in blocks("sh") if body.strip().startswith("taskq beat"))
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        beat = subprocess.Popen(shlex.split(block.strip()), cwd=ROOT, env=env_for(redis_url),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + GUARD
        while "beat leading" not in log.read_text():
            assert beat.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        beat.send_signal(signal.SIGINT)
        code = beat.wait(timeout=GUARD)
    assert code == 0 and "beat stopped" in log.read_text() and "Traceback" not in log.read_text(), log.read_text()


def test_every_install_line_and_version_lookup_names_the_distribution() -> None:
    """PyPI's `taskq` is somebody else's project: README, docs and error messages say
    `pip install taskq-redis`, and the version taskq logs is read from that distribution."""
    import importlib.metadata
    import tomllib

    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert name == "taskq-redis" and importlib.metadata.version(name)
    texts = {p: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                                        *(ROOT / "taskq").rglob("*.py")]}
    installs = [(p.name, m) for p, t in texts.items() for m in re.findall(r"pip install '?([\w.-]+)", t)]
    assert ("README.md", name) in installs
    assert [(p, m) for p, m in installs if m.startswith("taskq") and m != name] == []
    extras = [(p.name, m) for p, t in texts.items() for m in re.findall(r"\b([\w-]+)\[(?:memory|otel|dashboard)\]", t)]
    assert extras and [(p, m) for p, m in extras if m != name] == []
    lookups = [m for t in texts.values()
               for m in re.findall(r"(?:metadata\.version\(|package_name=|DISTRIBUTION = )\"([^\"]+)\"", t)]
    assert lookups and set(lookups) == {name}
