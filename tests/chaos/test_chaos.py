"""Chaos: three workers, one SIGKILLed every few seconds and replaced, while executions mixing
steps, waits, transactional steps and callbacks (completed from another process) run; then the
same with Redis restarted empty in the middle, and with the database restarted in the middle.

Every execution must end SUCCEEDED; a transactional step's write must exist exactly once; a
completed step must never run again: every run of a step but its last must have been cut short,
by a kill (its process is among those killed) or by the database restart (it ran just before or
during the restart, and its checkpoint could not be written).
Sizes: CHAOS_EXECUTIONS (default 200), CHAOS_KILL_INTERVAL seconds (default 3).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from durable.client import start_execution
from durable.models import Execution
from tests import workflows
from tests.processes import ROOT, database_url, descendants

pytestmark = [pytest.mark.processes, pytest.mark.timeout(900)]

EXECUTIONS = int(os.environ.get("CHAOS_EXECUTIONS", "200"))
KILL_INTERVAL = float(os.environ.get("CHAOS_KILL_INTERVAL", "3"))


def query(fn, default=None):
    """Run a read that may hit a restarting database; retry on the next poll."""
    try:
        return fn()
    except (OperationalError, InterfaceError):
        close_old_connections()
        connection.close()
        return default


def restart_database() -> None:
    if connection.vendor != "postgresql":
        raise AssertionError("the database restart scenario needs PostgreSQL (run under scripts/with-postgres)")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    subprocess.run(
        [
            *as_pg,
            f"{os.environ['PGBIN']}/pg_ctl",
            "-D",
            os.environ["PGDATA"],
            "-m",
            "fast",
            "-w",
            "restart",
            "-l",
            f"{os.environ['PGDATA']}/server.log",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("disruption", ["kills only", "redis restart", "database restart"])
def test_chaos(workers, redis_server, disruption, tmp_path):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS chaos_effect "
            "(tag VARCHAR(64), step VARCHAR(8), pid INTEGER, at DOUBLE PRECISION)"
        )
    pool = workers(3)
    stop_file = tmp_path / "stop"
    completer = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "chaos" / "completer.py"), str(stop_file)],
        env={**os.environ, "DATABASE_URL": database_url(connection.settings_dict), "REDIS_URL": redis_server.url},
        stdout=open(tmp_path / "completer.log", "wb"),  # noqa: SIM115 - lives as long as the process
        stderr=subprocess.STDOUT,
    )
    ids = [str(start_execution(workflows.chaos_mix, {"tag": f"c{i}"}).pk) for i in range(EXECUTIONS)]
    killed_pids: set[int] = set()
    kills = restarts = 0
    window = [float("inf"), float("-inf")]  # when the restart began and ended
    disrupted = disruption == "kills only"
    started = time.monotonic()
    next_kill = started + KILL_INTERVAL
    rng = random.Random(7)
    try:
        while True:
            running = query(lambda: Execution.objects.filter(pk__in=ids, status="RUNNING").count(), EXECUTIONS)
            if running == 0:
                break
            assert time.monotonic() - started < 600, f"{running} executions still running after 600 s"
            if not disrupted and running <= EXECUTIONS // 2:
                window[0] = time.time()
                if disruption == "redis restart":
                    redis_server.restart()
                else:
                    restart_database()
                window[1] = time.time()
                restarts += 1
                disrupted = True
            if time.monotonic() >= next_kill:
                victim = rng.choice(pool)
                killed_pids.update([victim.process.pid, *descendants(victim.process.pid)])
                victim.kill()
                pool.remove(victim)
                pool.extend(workers(1))
                kills += 1
                next_kill = time.monotonic() + KILL_INTERVAL
            time.sleep(0.2)
    finally:
        stop_file.touch()
        completer.wait(30)

    statuses = dict(Execution.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert set(statuses.values()) == {"SUCCEEDED"}, sorted(set(statuses.values()))
    with connection.cursor() as cursor:
        cursor.execute("SELECT tag, step, pid, at FROM chaos_effect ORDER BY at")
        rows = cursor.fetchall()
        cursor.execute("DELETE FROM chaos_effect")
    runs: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for tag, step, pid, at in rows:
        runs.setdefault((tag, step), []).append((pid, at))

    def cut_short(pid: int, at: float) -> bool:
        return pid in killed_pids or window[0] - 1.0 <= at <= window[1] + 0.5

    reruns = 0
    for i in range(EXECUTIONS):
        tag = f"c{i}"
        assert len(runs.get((tag, "b"), [])) == 1, f"transactional write of {tag} exists {runs.get((tag, 'b'))}"
        for step in ("a", "c"):
            step_runs = runs.get((tag, step), [])
            assert step_runs, f"step {step} of {tag} never ran"
            earlier = step_runs[:-1]
            assert all(cut_short(pid, at) for pid, at in earlier), (
                f"step {step} of {tag} ran again after a run that was not cut short: {step_runs}, "
                f"killed {sorted(killed_pids)}, restart window {window}"
            )
            reruns += len(earlier)
    took = time.monotonic() - started
    print(
        f"\nchaos ({disruption}): {EXECUTIONS} executions SUCCEEDED in {took:.1f}s on {connection.vendor}; "
        f"{kills} workers SIGKILLed, {restarts} restarts, {reruns} step bodies re-run after a kill, "
        f"transactional writes exactly once"
    )
