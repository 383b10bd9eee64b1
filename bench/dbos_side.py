"""Measure DBOS Transact (dbos 3.4) on a SQLite system database, for comparison with our engine.

Setup: a fresh ``<workdir>/dbos_sys.sqlite`` switched to ``journal_mode=WAL`` before DBOS opens
it (DBOS 3.4 sets busy_timeout, foreign_keys, BEGIN IMMEDIATE, but not WAL); ``synchronous`` is
left as DBOS leaves it. Both are read back with PRAGMA through DBOS's engine. No conductor key or
OTLP endpoint is set, so DBOS opens no network connection. One DBOS launch/destroy per call.

Measured in-process, after a 10-step warm-up workflow:
* ``ms_per_step``: wall time of one synchronous call of a workflow that runs ``steps`` trivial
  ``@DBOS.step`` calls in sequence (each returns ``{"i": i}``), minus the wall time of the same
  workflow with 0 steps, divided by ``steps``. ``live_queries_per_step`` and
  ``live_write_txns_per_step`` are counted the same way (SQLAlchemy events on DBOS's engine).
* ``rerun_completed_seconds``: calling the completed workflow again under its id
  (``SetWorkflowID``): DBOS does not run the body, it returns the recorded result.
* ``replay_seconds``: hence replay uses ``DBOS.fork_workflow(id, start_step=steps+1)``: a new
  workflow with copies of all ``steps`` step records, run by DBOS's internal queue; its body
  re-runs and each step returns its recorded output. ``replay_seconds`` is the body's own time;
  ``replay_wall_seconds`` spans fork call to result (adds the copy, queue polling every 1 s,
  result polling every 10 ms).
* ``queries_per_replay``: SQL statements issued on the thread running the forked workflow,
  dequeue to completion (``queries_in_replay_body``: only inside the body).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID
from dbos import _dbos as dbos_internals

# DBOS 3.4 on Python >= 3.12 uses unixepoch('subsec') in column DEFAULTs and UPDATEs. That
# modifier exists only in SQLite >= 3.42; older SQLite returns NULL and launch fails with
# "NOT NULL constraint failed". There we register a 1-argument unixepoch() on every new
# connection (app-defined functions override built-ins); other arguments use the built-in.
NEEDS_SHIM = sqlite3.sqlite_version_info < (3, 42, 0)
_ref_db, _ref_lock = sqlite3.connect(":memory:", check_same_thread=False), threading.Lock()
_body_times: dict[str, tuple[float, float, int]] = {}  # workflow id -> (start, end, thread)


def _unixepoch1(arg: Any) -> Any:
    if arg == "subsec":
        return round(time.time(), 3)
    with _ref_lock:
        return _ref_db.execute("SELECT unixepoch(?)", (arg,)).fetchone()[0]


def _install_shim(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.create_function("unixepoch", 1, _unixepoch1)


@DBOS.step()
def bench_step(i: int) -> dict[str, int]:
    return {"i": i}


@DBOS.workflow()
def bench_chain(n: int) -> int:
    start = time.perf_counter()
    for i in range(n):
        bench_step(i)
    _body_times[str(DBOS.workflow_id)] = (start, time.perf_counter(), threading.get_ident())
    return n


class _Tap:
    """Records (time, thread id, kind) per SQL statement ("stmt") and per commit of a
    transaction that wrote ("write_commit"; pysqlite opens no transaction for reads)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.events: list[tuple[float, int, str]] = []
        self._dirty: set[int] = set()

    def _stmt(self, conn: Any, _cur: Any, sql: str, *_: Any) -> None:
        self.events.append((time.perf_counter(), threading.get_ident(), "stmt"))
        if sql.lstrip()[:7].upper() in ("INSERT ", "UPDATE ", "DELETE ", "REPLACE"):
            self._dirty.add(id(conn))

    def _commit(self, conn: Any) -> None:
        if id(conn) in self._dirty:
            self._dirty.discard(id(conn))
            self.events.append((time.perf_counter(), threading.get_ident(), "write_commit"))

    def __enter__(self) -> _Tap:
        sa.event.listen(self.engine, "before_cursor_execute", self._stmt)
        sa.event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_: Any) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._stmt)
        sa.event.remove(self.engine, "commit", self._commit)

    def count(self, kind: str, thread: int, lo: float = 0.0, hi: float = float("inf")) -> int:
        return sum(1 for t, th, k in self.events if k == kind and th == thread and lo <= t <= hi)


def _run(n: int, wid: str) -> float:
    t0 = time.perf_counter()
    with SetWorkflowID(wid):
        assert bench_chain(n) == n
    return time.perf_counter() - t0


def measure_dbos(
    steps: int, workdir: str, synchronous: str | None = None, database_url: str | None = None
) -> dict[str, Any]:
    """Run the measurements in the module docstring on a new SQLite file in ``workdir``.

    Launches and destroys its own DBOS instance, so it can be called repeatedly in one
    process, but not while another DBOS instance exists there (raises RuntimeError).
    ``synchronous`` (e.g. "NORMAL") is set on every DBOS connection when given; else DBOS's own.
    ``database_url`` (a postgresql:// URL) puts DBOS's system database there instead of SQLite.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if dbos_internals._dbos_global_instance is not None:
        raise RuntimeError("a DBOS instance already exists in this process")
    os.makedirs(workdir, exist_ok=True)
    db_path = os.path.join(workdir, "dbos_sys.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    if database_url is None:
        pre = sqlite3.connect(db_path)  # journal_mode=WAL is persistent in the file
        pre.execute("PRAGMA journal_mode=WAL").fetchone()
        pre.close()
    config: DBOSConfig = {
        "name": "dbos-bench",
        "system_database_url": database_url or f"sqlite:///{db_path}",
        "log_level": "WARNING",
        "enable_otlp": False,
    }

    def _set_sync(dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

    if synchronous:
        sa.event.listen(sa.engine.Engine, "connect", _set_sync)
    if NEEDS_SHIM:
        sa.event.listen(sa.engine.Engine, "connect", _install_shim)
    t_launch = time.perf_counter()
    try:
        DBOS(config=config)
        DBOS.launch()
        launch_seconds = time.perf_counter() - t_launch
        engine: sa.Engine = dbos_internals._get_dbos_instance()._sys_db.engine
        journal_mode, sync = "n/a (postgresql)", -1
        if database_url is None:
            with engine.connect() as conn:
                journal_mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)

        tag, me = uuid.uuid4().hex[:8], threading.get_ident()
        _run(10, f"warmup-{tag}")
        main_id = f"main-{tag}"
        with _Tap(engine) as zero_tap:
            zero_s = _run(0, f"zero-{tag}")
        with _Tap(engine) as live_tap:
            full_s = _run(steps, main_id)
        body_first = _body_times[main_id]
        rerun_s = _run(steps, main_id)
        rerun_ran_body = _body_times[main_id] != body_first

        with _Tap(engine) as tap:
            t0 = time.perf_counter()
            handle = DBOS.fork_workflow(main_id, steps + 1)
            t_forked = time.perf_counter()
            assert handle.get_result(polling_interval_sec=0.01) == steps
            t1 = time.perf_counter()
        fork_id = handle.get_workflow_id()
        b_start, b_end, b_thread = _body_times[fork_id]

        def per_step(kind: str) -> float:
            return (live_tap.count(kind, me) - zero_tap.count(kind, me)) / steps

        return {
            "engine": "dbos",
            "dbos_version": importlib.metadata.version("dbos"),
            "steps": steps,
            "sqlite_version": sqlite3.sqlite_version,
            "unixepoch_subsec_shim": NEEDS_SHIM,
            "journal_mode": journal_mode,
            "synchronous": {-1: "n/a", 0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, str(sync)),
            "launch_seconds": round(launch_seconds, 4),
            "zero_step_workflow_seconds": round(zero_s, 6),
            "workflow_seconds": round(full_s, 6),
            "ms_per_step": round((full_s - zero_s) * 1000 / steps, 4),
            "live_queries_per_step": per_step("stmt"),
            "live_write_txns_per_step": per_step("write_commit"),
            "recorded_steps": len(DBOS.list_workflow_steps(main_id)),
            "rerun_completed_seconds": round(rerun_s, 6),
            "rerun_completed_ran_body": rerun_ran_body,
            "replay_method": (
                f"DBOS.fork_workflow(id, start_step={steps + 1}): new ENQUEUED workflow with "
                f"copies of all {steps} step records, run by the internal queue; body timed. "
                "Re-calling the completed id via SetWorkflowID returns the stored result only."
            ),
            "replay_seconds": round(b_end - b_start, 6),
            "replay_wall_seconds": round(t1 - t0, 6),
            "fork_call_seconds": round(t_forked - t0, 6),
            "replay_steps_recorded": len(DBOS.list_workflow_steps(fork_id)),
            "queries_per_replay": tap.count("stmt", b_thread, lo=t_forked),
            "queries_in_replay_body": tap.count("stmt", b_thread, b_start, b_end),
            "write_txns_per_replay": tap.count("write_commit", b_thread, lo=t_forked),
        }
    finally:
        DBOS.destroy()
        if NEEDS_SHIM:
            sa.event.remove(sa.engine.Engine, "connect", _install_shim)
        if synchronous:
            sa.event.remove(sa.engine.Engine, "connect", _set_sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--workdir", default=None, help="default: a fresh temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dbos-bench-") as tmp:
        print(json.dumps(measure_dbos(args.steps, args.workdir or tmp), indent=2))


if __name__ == "__main__":
    main()
