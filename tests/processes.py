"""Real processes for tests: a redis-server on a free port and durable workers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "var" / "test-logs"


def descendants(pid: int) -> list[int]:
    """All living descendants of `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for another process to open the database this process uses (the test one)."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"


def run_engine_script(script: str, redis_url: str, settings_dict: dict) -> subprocess.CompletedProcess[str]:
    """Run `script` in a Python process of its own, on the engine's test settings, the database
    of `settings_dict` (the test one) and the Redis at `redis_url`; it must exit 0 (its stderr
    is the assertion's message). Returns what it printed."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.durable.settings",
        "DATABASE_URL": database_url(settings_dict),
        "REDIS_URL": redis_url,
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), 10, message=f"redis-server on port {self.port}")
        return self

    def restart(self) -> None:
        """Stop the server (its data is gone: no persistence) and start an empty one on the same port."""
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class Worker:
    """A `manage.py durable_worker` process in a process group of its own (with its horses)."""

    def __init__(self, env: dict[str, str], name: str, extra_args: list[str] | None = None) -> None:
        self.name = name
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "durable_worker",
                "--name",
                name,
                "--exit-with-parent",  # no worker outlives a test run that was killed
                *(extra_args or []),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and every process it forked (horses call setpgrp, so find them all)."""
        if self.process.poll() is None:
            for pid in [*descendants(self.process.pid), self.process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """The worker processes its supervisor runs now (their RQ schedulers left out)."""
        pids = set()
        for pid in descendants(self.process.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid and b"--child" in cmdline:
                pids.add(pid)
        return pids


def blocked_on_the_queue(client: redis.Redis) -> int:
    """How many workers wait for a job now (an idle worker blocks in BLMOVE). Blocked now (flag
    `b`), not only last seen in BLMOVE: a test that ran a worker's dequeue in its own process
    leaves a pooled connection whose last command was one, open for the rest of the session."""
    return sum(1 for c in client.client_list() if c.get("cmd") == "blmove" and "b" in c.get("flags", ""))


def record_in_redis(key: str, value: str) -> str:
    """A plain RQ job (not an invocation) for worker tests: appends `value` to list `key`."""
    redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(key, value)
    return value
