"""`durable` as a reusable app: its wheel, built from this repository, added to a new Django
project made by `django-admin startproject`, works with its defaults: migrations, checks, the
time-skipping test runner, and a real worker running an execution through Redis.

Nothing is downloaded: the wheel is built from the source (no build isolation) and installed
without dependencies into a folder of its own; the project runs on this venv's Django, RQ and
Redis client, and never sees this repository's code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.processes import ROOT, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]

HANDLER = """
from durable import DurableContext, Duration, durable_execution, durable_step, StepContext


@durable_step
def shout(step: StepContext, text: str) -> str:
    return text.upper()


@durable_execution(name="orders.greet")
def greet(event: dict, context: DurableContext) -> dict:
    loud = context.step(shout(event["name"]))
    context.wait(Duration(1), name="a moment")
    return {"greeting": f"HELLO {loud}"}
"""

RUN_WITH_TEST_RUNNER = """
import json, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django.setup()
import durable
assert "site-packages-under-test" in durable.__file__, durable.__file__
from durable.testing import DurableTestRunner
from orders.workflows import greet
with DurableTestRunner(greet) as runner:
    result = runner.run(json.dumps({"name": "ada"}))
print(result.status, result.result)
"""

START = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django.setup()
from durable.client import start_execution
print(start_execution("orders.greet", {"name": "grace"}).pk)
"""

SHOW = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django.setup()
from durable.client import get_execution
execution = get_execution(sys.argv[1])
print(execution.status, execution.result)
"""


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_new_project_adds_durable_and_it_works_with_its_defaults(tmp_path, redis_server):
    python = sys.executable
    bare_env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    # The wheel, from a copy of the sources (a build leaves files behind).
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "durable", source / "durable", ignore=shutil.ignore_patterns("__pycache__"))
    run(
        [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        source,
        bare_env,
    )
    wheel = next(tmp_path.glob("durable_django-*.whl"))
    site = tmp_path / "site-packages-under-test"
    run([python, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], tmp_path, bare_env)
    assert (site / "durable" / "py.typed").exists()
    assert (site / "durable" / "migrations" / "0001_initial.py").exists()
    assert (site / "durable" / "templates" / "admin" / "durable" / "execution" / "detail.html").exists()
    assert not (site / "approvals").exists()
    assert not (site / "api").exists()

    # A new project, with an app holding a durable function in its workflows.py.
    project = tmp_path / "project"
    project.mkdir()
    env = {**bare_env, "PYTHONPATH": str(site)}
    django_admin = str(Path(python).with_name("django-admin"))
    run([django_admin, "startproject", "mysite", "."], project, env)
    run([python, "manage.py", "startapp", "orders"], project, env)
    (project / "orders" / "workflows.py").write_text(textwrap.dedent(HANDLER))
    settings = project / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + textwrap.dedent(
            f"""
            INSTALLED_APPS += ["django_rq", "durable", "orders"]
            RQ_QUEUES = {{"default": {{"URL": "{redis_server.url}"}}}}
            """
        )
    )
    run([python, "manage.py", "check"], project, env)
    run([python, "manage.py", "migrate", "--noinput"], project, env)

    # Its tests of a handler: the time-skipping runner, no Redis needed.
    out = run([python, "-c", RUN_WITH_TEST_RUNNER], project, env)
    assert out.split(maxsplit=1) == ["SUCCEEDED", '{"greeting": "HELLO ADA"}\n']

    # In production: started from the app, dispatched through Redis (the default dispatcher),
    # run by `manage.py durable_worker` (a wait of a second in between, through the timers).
    redis_server.client().flushall()
    execution_id = run([python, "-c", START], project, env).strip()
    worker = subprocess.Popen(
        [python, "manage.py", "durable_worker", "--exit-with-parent"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: run([python, "-c", SHOW, execution_id], project, env).startswith("SUCCEEDED"),
            60,
            message="the execution, on the new project's worker",
        )
        status = run([python, "-c", SHOW, execution_id], project, env)
    finally:
        worker.terminate()
        worker.wait(30)
    assert status.split(maxsplit=1) == ["SUCCEEDED", '{"greeting": "HELLO GRACE"}\n']
