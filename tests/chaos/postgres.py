"""Stopping and starting the test's PostgreSQL server (the cluster scripts/with-postgres made).

Only PostgreSQL has a server to restart; on SQLite these refuse with a message that says how to
run the test instead.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from django.db import connection


def require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise AssertionError("this test restarts the database server: run it under scripts/with-postgres")


def _pg_ctl(*args: str) -> None:
    require_postgresql()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    data = os.environ["PGDATA"]
    subprocess.run(
        [*as_pg, f"{os.environ['PGBIN']}/pg_ctl", "-D", data, "-w", "-l", f"{data}/server.log", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def restart() -> None:
    """Restart the server (fast shutdown: sessions are cut off, as in a failover)."""
    _pg_ctl("-m", "fast", "restart")


def stop() -> None:
    """Stop the server (fast shutdown); `start()` brings it back as it was."""
    # The options it was started with (port, socket directory, settings), for start().
    _options.append(Path(os.environ["PGDATA"], "postmaster.opts").read_text())
    _pg_ctl("-m", "fast", "stop")


def start() -> None:
    argv = shlex.split(_options.pop())
    data = argv.index("-D")
    del argv[data : data + 2]  # pg_ctl passes -D itself
    _pg_ctl("-o", shlex.join(argv[1:]), "start")


_options: list[str] = []
