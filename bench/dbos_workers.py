"""DBOS Transact (dbos 3.4) doing the work of bench/workers.py: throughput, callback-to-resume
latency and timer lateness, on a SQLite or PostgreSQL system database.

One DBOS process (this one) is launched per call and destroyed at the end, so
``measure_dbos_workers`` can be called repeatedly in one process (not while another DBOS
instance exists there). No conductor key or OTLP endpoint is set: no network connection.

* SQLite (``sqlite:////abs/path.sqlite3``): the file is switched to ``journal_mode=WAL`` before
  DBOS opens it (DBOS sets busy_timeout etc., not WAL), and every DBOS connection gets
  ``synchronous`` = ``--sqlite-synchronous`` (default NORMAL, what our settings use: DBOS's own
  default, FULL, would make it pay an fsync per commit that we do not). Both are read back
  through DBOS's engine. On SQLite < 3.42 the ``unixepoch('subsec')`` shim from
  bench/dbos_side.py is installed on every new connection.
* PostgreSQL (``postgres://`` or ``postgresql://``): used as the system database; DBOS creates its
  ``dbos`` schema in it. ``fsync`` and ``synchronous_commit`` are read back.

Measurements:
1. Throughput: ``executions`` workflows of 3 trivial ``@DBOS.step`` calls, at most ``concurrency``
   running at once, timed from the first start to the last result, after a warm-up. Two ways:
   ``threads``: ``concurrency`` Python threads, each ``DBOS.start_workflow`` then
   ``handle.get_result()`` (an in-memory future) one workflow after another;
   ``queue``: ``DBOS.register_queue(global_concurrency=concurrency, polling_interval_sec=0.01)``,
   all ``queue.enqueue``d at once, results awaited by polling every 10 ms. (``worker_concurrency``
   counts running workflows in memory and, polled every 1 ms, let 2 run at once with a limit of 1;
   the global limit is counted in the database.) ``exec_per_s`` is the better of the two
   (``throughput_method`` says which); ``max_running_*`` are the observed peaks.
2. Callback-to-resume: ``samples`` times, a workflow blocks in ``DBOS.recv(topic, 60)``; once its
   waiter is registered, 0.3 s more (on SQLite plus a random part of the poller's period, so that
   sends do not all land at one phase of it), then ``DBOS.send`` from outside; latency =
   time.time() in the following step - time of send. On SQLite (no LISTEN/NOTIFY) recv wakes on
   DBOS's notification poller (``notification_listener_polling_interval_sec``, DBOS default 1 s);
   on PostgreSQL on NOTIFY.
3. Timer lateness: ``samples`` workflows started together: step (time.time()), ``DBOS.sleep(2)``,
   step (time.time()); lateness = after - before - 2.

Usage: python bench/dbos_workers.py --database-url URL [--executions 200] [--samples 20]
       [--concurrency 1]; prints the result dict as JSON on the last line.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig
from dbos import _dbos as dbos_internals

if __package__:
    from .dbos_side import NEEDS_SHIM, _install_shim
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from dbos_side import NEEDS_SHIM, _install_shim

QUEUE_NAME = "bench_workers_queue"
SLEEP_SECONDS = 2.0
# Workflow id -> (perf_counter at body start, at body end), to check the concurrency bound.
_spans: dict[str, tuple[float, float]] = {}


@DBOS.step()
def wk_step(i: int) -> int:
    return i


@DBOS.step()
def wk_clock() -> float:
    return time.time()


@DBOS.workflow()
def wk_three_steps() -> int:
    start = time.perf_counter()
    total = 0
    for i in range(3):
        total += wk_step(i)
    _spans[str(DBOS.workflow_id)] = (start, time.perf_counter())
    return total


@DBOS.workflow()
def wk_await_message(topic: str) -> float:
    message = DBOS.recv(topic, timeout_seconds=60)
    if message != "ok":
        raise RuntimeError(f"recv returned {message!r} (timed out?)")
    return wk_clock()


@DBOS.workflow()
def wk_timer(seconds: float) -> tuple[float, float]:
    before = wk_clock()
    DBOS.sleep(seconds)
    return before, wk_clock()


def percentile(values: list[float], p: float) -> float:
    """Same nearest-rank rule as bench/workers.py."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _max_overlap(ids: list[str]) -> int:
    """Largest number of the given workflows whose bodies ran at the same moment."""
    edges = sorted(e for i in ids for e in ((_spans[i][0], 1), (_spans[i][1], -1)))
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def _wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def _throughput_threads(executions: int, concurrency: int) -> tuple[float, list[str]]:
    """``concurrency`` threads, each starting a workflow and awaiting its result, in turn."""
    next_index = iter(range(executions))
    lock, go = threading.Lock(), threading.Event()
    ids: list[str] = []
    errors: list[BaseException] = []
    finished: list[float] = []

    def worker() -> None:
        go.wait()
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    break
                handle = DBOS.start_workflow(wk_three_steps)
                if handle.get_result() != 3:
                    raise AssertionError(f"workflow {handle.get_workflow_id()} returned a wrong result")
                with lock:
                    ids.append(handle.get_workflow_id())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finished.append(time.perf_counter())

    threads = [threading.Thread(target=worker, name=f"bench-starter-{n}") for n in range(concurrency)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert len(ids) == executions
    return executions / (max(finished) - t0), ids


def _throughput_queue(executions: int, concurrency: int, polling_sec: float) -> tuple[float, list[str]]:
    """All workflows enqueued on a DBOS queue limited to ``concurrency`` on this executor."""
    queue = DBOS.register_queue(
        QUEUE_NAME,
        global_concurrency=concurrency,
        polling_interval_sec=polling_sec,
        on_conflict="always_update",
    )
    # Warm-up; also waits for DBOS's queue manager (1 s check interval) to start this queue's thread.
    for handle in [queue.enqueue(wk_three_steps) for _ in range(3)]:
        assert handle.get_result(polling_interval_sec=0.01) == 3
    t0 = time.perf_counter()
    handles = [queue.enqueue(wk_three_steps) for _ in range(executions)]
    for handle in handles:
        assert handle.get_result(polling_interval_sec=0.01) == 3
    elapsed = time.perf_counter() - t0
    return executions / elapsed, [h.get_workflow_id() for h in handles]


def _recv_waiting(sys_db: Any, workflow_id: str) -> bool:
    return any(components[0] == workflow_id for _, components, _ in sys_db.notifications_map.snapshot())


def _callback_latencies(samples: int, jitter_sec: float) -> list[float]:
    sys_db = dbos_internals._get_dbos_instance()._sys_db
    rng = random.Random(12345)
    latencies = []
    for n in range(samples):
        topic = f"approval-{n}"
        handle = DBOS.start_workflow(wk_await_message, topic)
        wid = handle.get_workflow_id()
        # recv registers its waiter in DBOS's in-memory notification map, then checks the table
        # and records its timeout; wait for the waiter, then leave it a moment to reach its wait.
        # The random extra wait spreads the sends over the notification poller's period: with a
        # fixed wait every sample would land at the same phase of it (SQLite).
        _wait_until(lambda wid=wid: _recv_waiting(sys_db, wid), 30, "recv to wait")
        time.sleep(0.3 + rng.uniform(0, jitter_sec))
        t_send = time.time()
        DBOS.send(wid, "ok", topic)
        latencies.append(handle.get_result() - t_send)
    return latencies


def _timer_lateness(samples: int) -> list[float]:
    handles = [DBOS.start_workflow(wk_timer, SLEEP_SECONDS) for _ in range(samples)]
    lateness = []
    for handle in handles:
        before, after = handle.get_result()
        lateness.append(after - before - SLEEP_SECONDS)
    return lateness


def _normalise_url(database_url: str) -> tuple[str, str]:
    if database_url.startswith("sqlite:"):
        return database_url, "sqlite"
    if database_url.startswith(("postgres://", "postgresql://", "postgresql+")):
        url = sa.make_url(database_url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False), "postgresql"
    raise ValueError(f"unsupported database URL: {database_url!r}")


def measure_dbos_workers(
    database_url: str,
    executions: int,
    samples: int,
    concurrency: int,
    *,
    sqlite_synchronous: str = "NORMAL",
    queue_polling_interval_sec: float = 0.01,
    notification_polling_interval_sec: float | None = None,
) -> dict[str, Any]:
    """Run the measurements in the module docstring; see there for the method.

    ``queue_polling_interval_sec``: the benchmark queue's polling interval (DBOS default 1 s, which
    would cap the queue at ``concurrency`` workflows per second). ``notification_polling_interval_sec``:
    DBOS's notification poller (SQLite recv wake-ups); None leaves DBOS's default (1 s).
    """
    if executions < 1 or samples < 1 or concurrency < 1:
        raise ValueError("executions, samples and concurrency must be >= 1")
    if dbos_internals._dbos_global_instance is not None:
        raise RuntimeError("a DBOS instance already exists in this process")
    url, database = _normalise_url(database_url)
    if database == "sqlite":
        path = sa.make_url(url).database
        if not path or path == ":memory:":
            raise ValueError("the SQLite system database must be a file")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        pre = sqlite3.connect(path)  # journal_mode=WAL persists in the file
        pre.execute("PRAGMA journal_mode=WAL").fetchone()
        pre.close()
    config: DBOSConfig = {
        "name": "dbos-bench-workers",
        "system_database_url": url,
        "log_level": "WARNING",
        "enable_otlp": False,
    }
    if notification_polling_interval_sec is not None:
        config["notification_listener_polling_interval_sec"] = notification_polling_interval_sec
    shim = database == "sqlite" and NEEDS_SHIM
    if shim:
        sa.event.listen(sa.engine.Engine, "connect", _install_shim)
    if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"bad synchronous mode {sqlite_synchronous!r}")

    def set_synchronous(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA synchronous={sqlite_synchronous.upper()}")

    if database == "sqlite":
        sa.event.listen(sa.engine.Engine, "connect", set_synchronous)
    result: dict[str, Any] = {
        "engine": "dbos",
        "dbos_version": importlib.metadata.version("dbos"),
        "database": database,
        "concurrency": concurrency,
        "executions": executions,
        "samples": samples,
    }
    try:
        t_launch = time.perf_counter()
        DBOS(config=config)
        DBOS.launch()
        result["launch_seconds"] = round(time.perf_counter() - t_launch, 3)
        sys_db = dbos_internals._get_dbos_instance()._sys_db
        with sys_db.engine.connect() as conn:
            if database == "sqlite":
                sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
                result.update(
                    sqlite_version=sqlite3.sqlite_version,
                    unixepoch_subsec_shim=NEEDS_SHIM,
                    journal_mode=conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                    synchronous={0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, str(sync)),
                )
            else:
                result.update(
                    server_version=conn.exec_driver_sql("SHOW server_version").scalar(),
                    fsync=conn.exec_driver_sql("SHOW fsync").scalar(),
                    synchronous_commit=conn.exec_driver_sql("SHOW synchronous_commit").scalar(),
                    listen_notify=bool(getattr(sys_db, "use_listen_notify", False)),
                )
        result["notification_listener_polling_interval_sec"] = sys_db._notification_listener_polling_interval_sec

        # 1. Throughput. Threads first: the queue's poller runs from registration until deletion.
        for _ in range(5):
            assert DBOS.start_workflow(wk_three_steps).get_result() == 3
        threads_rate, thread_ids = _throughput_threads(executions, concurrency)
        try:
            queue_rate, queue_ids = _throughput_queue(executions, concurrency, queue_polling_interval_sec)
        finally:
            DBOS.delete_queue(QUEUE_NAME)
        steps_recorded = {len(DBOS.list_workflow_steps(i)) for i in (thread_ids[0], queue_ids[-1])}
        if steps_recorded != {3}:
            raise AssertionError(f"expected 3 recorded steps per workflow, got {steps_recorded}")
        winner = "threads" if threads_rate >= queue_rate else "queue"
        result.update(
            exec_per_s=round(max(threads_rate, queue_rate), 2),
            throughput_method=winner,
            exec_per_s_threads=round(threads_rate, 2),
            exec_per_s_queue=round(queue_rate, 2),
            queue_polling_interval_sec=queue_polling_interval_sec,
            max_running_threads=_max_overlap(thread_ids),
            max_running_queue=_max_overlap(queue_ids),
        )

        # 2. Callback-to-resume latency.
        jitter = sys_db._notification_listener_polling_interval_sec if database == "sqlite" else 0.0
        latencies = _callback_latencies(samples, jitter)
        result.update(
            cb_p50_ms=round(percentile(latencies, 50) * 1000, 2),
            cb_p95_ms=round(percentile(latencies, 95) * 1000, 2),
            cb_max_ms=round(max(latencies) * 1000, 2),
            cb_wait_before_send_sec=f"0.3 + uniform(0, {jitter:g})",
        )

        # 3. Timer lateness.
        lateness = _timer_lateness(samples)
        result.update(
            timer_p50_ms=round(percentile(lateness, 50) * 1000, 2),
            timer_p95_ms=round(percentile(lateness, 95) * 1000, 2),
            timer_max_ms=round(max(lateness) * 1000, 2),
        )
        return result
    finally:
        DBOS.destroy()
        if shim:
            sa.event.remove(sa.engine.Engine, "connect", _install_shim)
        if database == "sqlite":
            sa.event.remove(sa.engine.Engine, "connect", set_synchronous)
        _spans.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="sqlite:////abs/file or postgresql://...")
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--queue-polling", type=float, default=0.01, help="queue polling interval, s")
    parser.add_argument(
        "--notification-polling", type=float, default=None, help="DBOS notification poller, s (default: DBOS's)"
    )
    parser.add_argument(
        "--sqlite-synchronous", default="NORMAL", help="PRAGMA synchronous on DBOS's SQLite connections (ours: NORMAL)"
    )
    args = parser.parse_args()
    result = measure_dbos_workers(
        args.database_url,
        args.executions,
        args.samples,
        args.concurrency,
        queue_polling_interval_sec=args.queue_polling,
        notification_polling_interval_sec=args.notification_polling,
        sqlite_synchronous=args.sqlite_synchronous,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
