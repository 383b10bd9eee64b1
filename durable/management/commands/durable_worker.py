"""Start durable workers: a small supervisor that keeps N worker processes running.

Each worker process takes invocations from the durable queue, moves due timers to it (one
worker at a time) and runs the periodic sweep. A worker that dies, or ends itself because an
invocation overran its time budget, is started again.

RQ's own scheduler is not started: the engine's wake-ups never use it (their timers set is
moved to the queue by `durable.rq.timers`), and it would cost every worker a Redis lock attempt
and a registry poll each second for nothing. `--with-rq-scheduler` starts it, for projects that
also schedule plain RQ jobs (`enqueue_at`, `enqueue_in`) on the same queue.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from durable import conf, metrics
from durable.rq import liveness
from durable.rq.jobs import queue
from durable.rq.worker import DurableForkingWorker, DurableWorker, wait_for_redis


class Command(BaseCommand):
    help = "Run durable workers (supervised processes with the timers and the periodic sweep)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default=None, help="Worker name (default: host and pid).")
        parser.add_argument("--processes", type=int, default=1, help="Worker processes to keep running.")
        parser.add_argument("--burst", action="store_true", help="Stop when the queue is empty (no supervisor).")
        parser.add_argument("--fork", action="store_true", help="Fork a work-horse per job (RQ's default worker).")
        parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument(
            "--exit-with-parent", action="store_true", help="Stop the workers when the process that started us ends."
        )
        parser.add_argument(
            "--with-rq-scheduler",
            action="store_true",
            help="Also run RQ's scheduler, for plain RQ jobs scheduled with enqueue_at/enqueue_in.",
        )
        parser.add_argument("--log-level", default="INFO")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit 0 if this machine's workers touched their heartbeat file lately, else 1 (a healthcheck).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"]:
            self.check_heartbeat()
        if options["child"] or options["burst"]:
            self.run_worker(options)
        else:
            self.supervise(options)

    def check_heartbeat(self) -> None:
        path, max_age = conf.get("WORKER_HEARTBEAT_FILE"), conf.get("WORKER_HEARTBEAT_MAX_AGE")
        age = liveness.age(path)
        if age is not None and age <= max_age:
            self.stdout.write(f"ok: workers' heartbeat {age:.1f}s ago")
            sys.exit(0)
        said = "never marked" if age is None else f"{age:.1f}s old (limit {max_age:g}s)"
        self.stderr.write(f"stale: workers' heartbeat {path} {said}")
        sys.exit(1)

    def run_worker(self, options: dict[str, Any]) -> None:
        q = queue()
        # A worker started while Redis is away waits for it rather than failing at once (and
        # being restarted every half second by its supervisor while the outage lasts).
        wait_for_redis(q.connection)
        worker_class = DurableForkingWorker if options["fork"] else DurableWorker
        worker = worker_class([q], connection=q.connection, name=options["name"])
        self.stdout.write(
            f"durable worker {worker.name} on queue {conf.get('QUEUE')!r} "
            f"({'forking' if options['fork'] else 'in-process'}, sweep every {conf.get('SWEEP_INTERVAL')}s)"
        )
        self.stdout.flush()
        worker.work(
            burst=options["burst"], with_scheduler=options["with_rq_scheduler"], logging_level=options["log_level"]
        )

    def supervise(self, options: dict[str, Any]) -> None:
        base = options["name"]
        children: dict[int, subprocess.Popen[bytes]] = {}
        starts: dict[int, int] = {}
        stopping = False

        def spawn(slot: int) -> None:
            argv = [sys.executable, sys.argv[0], "durable_worker", "--child", "--log-level", options["log_level"]]
            starts[slot] = starts.get(slot, 0) + 1
            if base:
                # A restarted worker needs a new name: the dead one's stays registered in Redis a while.
                name = f"{base}-{slot}" if options["processes"] > 1 else base
                argv += ["--name", name if starts[slot] == 1 else f"{name}-r{starts[slot] - 1}"]
            if options["fork"]:
                argv.append("--fork")
            if options["with_rq_scheduler"]:
                argv.append("--with-rq-scheduler")
            children[slot] = subprocess.Popen(argv)  # noqa: S603 - our own command line

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if conf.get("METRICS_MULTIPROC_DIR"):
            os.makedirs(conf.get("METRICS_MULTIPROC_DIR"), exist_ok=True)
        parent = os.getppid()
        for slot in range(options["processes"]):
            spawn(slot)
        while True:
            time.sleep(0.5)
            if options["exit_with_parent"] and os.getppid() != parent and not stopping:
                stop(signal.SIGTERM, None)
            for slot, child in list(children.items()):
                code = child.poll()
                if code is None:
                    continue
                metrics.process_ended(child.pid)
                if stopping:
                    children.pop(slot)
                    continue
                self.stderr.write(f"worker process {child.pid} exited with {code}; starting another")
                spawn(slot)
            if stopping and not children:
                liveness.remove(conf.get("WORKER_HEARTBEAT_FILE"))  # stopped: no longer alive
                return
