"""The container entry point, run for real outside Docker (CI has no Docker engine)."""

import os
import sqlite3
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.processes import ROOT, database_url, free_port, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]

ENTRYPOINT = str(ROOT / "scripts" / "entrypoint")


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "DJANGO_ENV": "production",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "entrypoint-test-" + "k7" * 20,
        "DJANGO_SSL_REDIRECT": "false",  # the test speaks plain http
        **extra,
    }


def tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_migrate_role_creates_the_schema(tmp_path):
    db = tmp_path / "fresh.sqlite3"
    done = subprocess.run([ENTRYPOINT, "migrate"], env=env(DATABASE_URL=f"sqlite:///{db}"), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert {"durable_execution", "durable_operation", "durable_historyevent"} <= tables(db)


def test_web_role_migrates_then_serves_with_gunicorn(tmp_path, redis_server):
    db = tmp_path / "web.sqlite3"
    metrics_dir = tmp_path / "prometheus"  # the entry point makes it
    token = "entrypoint-metrics-" + "t" * 20
    port = free_port()
    subprocess.run([ENTRYPOINT, "python", "manage.py", "collectstatic", "--noinput", "-v0"], env=env(), check=True)
    web = subprocess.Popen(
        [ENTRYPOINT, "web"],
        env=env(
            DATABASE_URL=f"sqlite:///{db}",
            REDIS_URL=redis_server.url,
            PORT=str(port),
            BIND="127.0.0.1",
            WEB_CONCURRENCY="2",
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            DURABLE_METRICS_TOKEN=token,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def get(path: str, **headers: str) -> int | None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
                with urllib.request.urlopen(request, timeout=2) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                return None

        assert wait_until(lambda: get("/healthz"), 60, interval=0.2, message="gunicorn") == 200
        assert get("/static/admin/css/base.css") == 200  # collected static files, served by whitenoise
        assert "durable_execution" in tables(db)
        # /metrics in multiprocess mode across gunicorn's two workers.
        assert get("/metrics") == 401
        assert get("/metrics", Authorization=f"Bearer {token}") == 200
        assert list(metrics_dir.glob("*.db"))  # the web workers count into the directory
    finally:
        web.terminate()
        output = web.communicate(timeout=30)[0].decode()
    assert "Booting worker" in output  # it really was gunicorn


@pytest.mark.parametrize("secret", [None, "", "short-key", "x" * 60])
def test_the_image_refuses_to_start_without_a_real_secret(tmp_path, secret):
    """The Dockerfile sets production mode; then no role starts on a missing or weak key."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "DJANGO_ENV=production" in dockerfile.split("FROM", 1)[1].split("RUN", 1)[0]  # an ENV, not a RUN's
    image_env = {k: v for k, v in env().items() if k not in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG")}
    if secret is not None:
        image_env["DJANGO_SECRET_KEY"] = secret
    image_env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'refused.sqlite3'}"
    for role in ("migrate", "worker"):
        done = subprocess.run([ENTRYPOINT, role], env=image_env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "set DJANGO_SECRET_KEY to a random value of 50+ characters" in done.stderr
    assert not (tmp_path / "refused.sqlite3").exists()


def test_other_roles_run_as_commands():
    done = subprocess.run([ENTRYPOINT, "echo", "passed through"], env=env(), capture_output=True, text=True)
    assert done.stdout.strip() == "passed through"


@pytest.mark.django_db(transaction=True)
def test_worker_role_runs_invocations(redis_server, settings):
    from django.db import connection

    from durable.client import get_execution, start_execution
    from tests import workflows

    settings.RQ_QUEUES["default"]["URL"] = redis_server.url
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "DISPATCHER": "durable.rq.dispatch"}
    redis_server.client().flushall()
    worker = subprocess.Popen(
        [ENTRYPOINT, "worker", "--exit-with-parent"],
        env=env(DATABASE_URL=database_url(connection.settings_dict), REDIS_URL=redis_server.url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        execution = start_execution(workflows.three_steps, {"n": 10})
        done = wait_until(
            lambda: (e := get_execution(execution.pk)).status != "RUNNING" and e, 30, message="the worker"
        )
        assert done.status == "SUCCEEDED"
        assert done.result == "33"
    finally:
        worker.terminate()
        worker.wait(30)
