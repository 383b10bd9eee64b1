"""Load through the front door: the documents API under gunicorn, driven by locust (headless).

Sets up everything it measures and takes it all down again: a fresh database (a new SQLite file,
or under scripts/with-postgres a new database in that cluster), a user and an API token with the
`documents:submit` scope, a redis-server of its own, `manage.py durable_worker --processes
--durable-workers`, gunicorn (config/gunicorn.py, as scripts/entrypoint runs it) with
--gunicorn-workers sync workers on 127.0.0.1, and the offline summarizer. Then locust runs
bench/locustfile.py for --duration seconds with --users users (each submits a document, polls its
status until it awaits review, and submits the next) and this prints, for submit (POST
/api/documents) and for status polling (GET /api/documents/{id}): requests per second, p50, p95
and p99 latency, and errors; and the time from submit to "awaiting review" (the first review's
creation minus the document's, read from the database once every document submitted got there).

The API's per-token rate limit (300 a minute) would refuse most of this load from its single
token: the bench turns it off (API_RATE_LIMIT_REQUESTS=0) unless --rate-limit is given. Nothing
leaves localhost; locust comes from pip (requirements-dev.txt).

Usage: python bench/load.py [--users 20] [--spawn-rate 10] [--duration 30] [--gunicorn-workers 2]
       [--durable-workers 2] [--json-out FILE]
       scripts/with-postgres .venv/bin/python bench/load.py ...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import RedisServer, Worker, descendants, free_port, wait_until  # noqa: E402

BEFORE_REVIEW = ("submitted", "summarizing")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def fresh_database(workdir: Path) -> tuple[str, str, str | None]:
    """(DATABASE_URL, database kind, PostgreSQL database to drop at the end)."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        return f"sqlite:///{workdir / 'load.sqlite3'}", "sqlite", None
    import psycopg

    name = f"load_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name, "postgresql", name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(os.environ["LOAD_BASE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def request(url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


class Gunicorn:
    """gunicorn serving config.wsgi as scripts/entrypoint's web role does. It stays in the bench's
    process group (as redis-server does), so killing that group leaves nothing behind."""

    def __init__(self, port: int, workers: int, log: Path) -> None:
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--config",
                "python:config.gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--graceful-timeout",
                "10",
                "--no-control-socket",  # its default path is per user: two benches at once would share it
            ],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: requests in progress finish
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                for pid in [*descendants(self.process.pid), self.process.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait(10)
        if not self.log.closed:
            self.log.close()


def response_time_percentile(times: dict[str, int], total: int, p: float) -> float | None:
    """Locust's percentile from its histogram {rounded ms: count}: the least time with p% at or under it."""
    seen = 0
    for key in sorted(times, key=float):
        seen += times[key]
        if seen >= p / 100 * total:
            return float(key)
    return None


def locust_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The final stats of "submit" and "status" from locust's --json-file (latencies in ms)."""
    rows = {}
    for entry in json.loads(path.read_text()):
        if entry["name"] in ("submit", "status"):
            total, times = entry["num_requests"], entry["response_times"]
            span = max(entry["last_request_timestamp"] - entry["start_time"], 1e-9)
            rows[entry["name"]] = {
                "requests": total,
                "rps": round(total / span, 1),
                "p50_ms": response_time_percentile(times, total, 50),
                "p95_ms": response_time_percentile(times, total, 95),
                "p99_ms": response_time_percentile(times, total, 99),
                "errors": entry["num_failures"],
            }
    for name in ("submit", "status"):  # a request never made is a figure missing, not zero
        rows.setdefault(name, {"requests": 0, "rps": 0.0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "errors": 0})
    return rows


def cpu_seconds(process: subprocess.Popen[bytes] | None) -> float:
    """CPU time (user + system) a process and its living descendants have used so far."""
    if process is None:
        return 0.0
    total = 0
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def locust_failures(path: Path) -> list[str]:
    if not path.exists():
        return ["locust wrote no failure report"]
    return [f"{e['occurrences']}x {e['method']} {e['name']}: {e['error']}" for e in json.loads(path.read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20, help="concurrent API clients")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second")
    parser.add_argument("--duration", type=int, default=30, help="seconds of load")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--durable-workers", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between a client's status polls")
    parser.add_argument("--rate-limit", type=int, default=0, help="API requests per token a minute (0: off)")
    parser.add_argument("--drain-timeout", type=float, default=120, help="seconds to wait for the backlog")
    parser.add_argument("--json-out", type=Path, help="also write the JSON figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, locust's JSON, database)")
    args = parser.parse_args()
    # A SIGTERM (a timeout, an operator) unwinds like Ctrl-C: the `finally` below stops everything.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    os.environ["LOAD_BASE_DATABASE_URL"] = os.environ.get("DATABASE_URL", "")
    database_url, database, dropped = fresh_database(workdir)
    (workdir / "prometheus").mkdir()
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",  # as in production: no query log, no debug pages
        DJANGO_SSL_REDIRECT="false",  # plain http on localhost (production sits behind TLS)
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",  # no mail leaves
        DJANGO_LOG_LEVEL="WARNING",
        LLM_PROVIDER="offline",
        API_RATE_LIMIT_REQUESTS=str(args.rate_limit),
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),  # as scripts/entrypoint's web role
    )
    redis_server = RedisServer()
    gunicorn: Gunicorn | None = None
    workers: Worker | None = None
    # Every process the bench started (and theirs), recorded before they are stopped: the smoke
    # test checks that none outlives the run.
    pids: set[int] = set()

    def record_pids() -> None:
        for process in (redis_server.process, gunicorn and gunicorn.process, workers and workers.process):
            if process is not None:
                pids.update([process.pid, *descendants(process.pid)])

    try:
        redis_server.start()
        os.environ["REDIS_URL"] = redis_server.url
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from api.models import Scope
        from api.services import token_create
        from approvals.models import Document, Review

        call_command("migrate", verbosity=0)
        owner = get_user_model().objects.create_user("load-client", password=None)
        token = token_create(owner=owner, name="bench/load.py", scopes=[Scope.SUBMIT_DOCUMENTS]).plaintext
        from django.db import connections

        connections.close_all()  # gunicorn and the workers write next; this process only reads later

        workers = Worker(dict(os.environ), f"load-{os.getpid()}", ["--processes", str(args.durable_workers)])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        gunicorn = Gunicorn(port, args.gunicorn_workers, workdir / "gunicorn.log")
        wait_until(lambda: healthy(f"{base}/healthz"), 60, interval=0.1, message="gunicorn")
        record_pids()

        # Warm up every process (imports, connections, the summarizer's first call) off the clock.
        warm = []
        for i in range(2 * max(args.gunicorn_workers, args.durable_workers)):
            status, answer = request(
                f"{base}/api/documents", token, {"title": f"warm-up {i}", "text": "Warm up. " * 40}
            )
            assert status == 202, f"warm-up submit answered {status}"
            warm.append(answer["id"])

        def before_review(ids: list[str] | None = None) -> int:
            documents = Document.objects.filter(status__in=BEFORE_REVIEW)
            return documents.filter(public_id__in=ids).count() if ids is not None else documents.count()

        wait_until(lambda: before_review(warm) == 0, 120, interval=0.1, message="the warm-up documents")
        warm_pks = set(Document.objects.values_list("pk", flat=True))
        connections.close_all()

        prefix = workdir / "locust"

        def cpu() -> dict[str, float]:
            return {
                "web": cpu_seconds(gunicorn and gunicorn.process),
                "durable_workers": cpu_seconds(workers and workers.process),
                "redis": cpu_seconds(redis_server.process),
                "locust": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime,
            }

        cpu_before = cpu()
        started = time.monotonic()
        locust = subprocess.run(
            [
                str(Path(sys.executable).parent / "locust"),
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--headless",
                "--only-summary",
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.spawn_rate),
                "--run-time",
                f"{args.duration}s",
                "--host",
                base,
                "--json-file",
                str(prefix),  # locust adds .json
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "LOAD_TOKEN": token,
                "LOAD_POLL_SECONDS": str(args.poll),
                "LOAD_FAILURES_FILE": str(workdir / "failures.json"),
            },
            capture_output=True,
            text=True,
            timeout=args.duration + 120,
        )
        elapsed = time.monotonic() - started
        cpu_after = cpu()
        record_pids()
        if not Path(f"{prefix}.json").exists():
            raise SystemExit(f"locust wrote no stats (exit {locust.returncode}):\n{locust.stderr[-3000:]}")

        # A submit locust gave up on at the end may still be in gunicorn: a graceful stop lets it
        # commit before the backlog is counted. The documents submitted last are still being
        # summarized: let the workers finish them.
        record_pids()
        gunicorn.stop()
        drained = True
        try:
            wait_until(lambda: before_review() == 0, args.drain_timeout, interval=0.2, message="the backlog")
        except AssertionError:
            drained = False
        documents = Document.objects.exclude(pk__in=warm_pks)
        first_reviews = dict(
            Review.objects.filter(round=1, document__in=documents).values_list("document_id", "created_at")
        )
        waits = [
            (first_reviews[pk] - created).total_seconds() * 1000
            for pk, created in documents.values_list("pk", "created_at")
            if pk in first_reviews
        ]
        # A document that never got a review: what its workflow says (none, when all is well).
        not_reached = list(
            documents.exclude(pk__in=first_reviews).values("public_id", "status", "status_detail", "execution_id")[:10]
        )
        statuses: dict[str, int] = {}
        for status in documents.values_list("status", flat=True):
            statuses[status] = statuses.get(status, 0) + 1
        rows = locust_rows(Path(f"{prefix}.json"))
        server_errors = [
            line for line in gunicorn.log_path.read_text(errors="replace").splitlines() if "Traceback" in line
        ]
        figures = {
            "database": database,
            "users": args.users,
            "spawn_rate": args.spawn_rate,
            "duration_s": args.duration,
            "elapsed_s": round(elapsed, 1),
            "gunicorn_workers": args.gunicorn_workers,
            "durable_workers": args.durable_workers,
            "poll_s": args.poll,
            "rate_limit": args.rate_limit,
            "submit": rows["submit"],
            "status": rows["status"],
            "submit_to_review": {
                "documents": documents.count(),
                "reached": len(waits),
                "p50_ms": round(statistics.median(waits), 1) if waits else None,
                "p95_ms": round(percentile(waits, 95), 1) if waits else None,
                "max_ms": round(max(waits), 1) if waits else None,
                "drained": drained,
            },
            "document_statuses": statuses,
            "not_reached": not_reached,
            "errors": rows["submit"]["errors"] + rows["status"]["errors"],
            "failures": locust_failures(workdir / "failures.json"),
            "server_tracebacks": len(server_errors),
            # Where the machine's time went during the load (CPU seconds, and the share of the
            # cores'); the durable workers' backlog after the run is not counted.
            "cpu_s": {k: round(cpu_after[k] - cpu_before[k], 1) for k in cpu_before},
            "cpu_share": {
                k: round((cpu_after[k] - cpu_before[k]) / (elapsed * (os.cpu_count() or 1)), 2) for k in cpu_before
            },
        }
    finally:
        record_pids()
        if gunicorn is not None:
            gunicorn.stop()
        if workers is not None:
            workers.stop()
        redis_server.stop()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if dropped:
            drop_database(dropped)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"Load through the API on {database}: {args.users} users for {args.duration} s, "
        f"{args.gunicorn_workers} gunicorn workers, {args.durable_workers} durable workers"
    )
    print(f"{'request':<10} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name in ("submit", "status"):
        row = figures[name]
        print(
            f"{name:<10} {row['requests']:>9} {row['rps']:>7} {row['p50_ms']!s:>8} {row['p95_ms']!s:>8} "
            f"{row['p99_ms']!s:>8} {row['errors']:>7}"
        )
    waited = figures["submit_to_review"]
    print(
        f"submit -> awaiting review: p50 {waited['p50_ms']} ms, p95 {waited['p95_ms']} ms, max {waited['max_ms']} ms "
        f"({waited['reached']} of {waited['documents']} documents)"
    )
    figures["pids"] = sorted(pids)
    print("CPU seconds during the load:", ", ".join(f"{k} {v}" for k, v in figures["cpu_s"].items()))
    for failure in figures["failures"]:
        print("  failure:", failure)
    print(json.dumps(figures, default=str))
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
