"""A worker keeps what it holds once set up out of the garbage collector's way (gc.freeze)."""

import gc
import textwrap

import pytest
from django.db import connection

from durable.client import start_execution
from durable.models import Execution
from tests import workflows
from tests.processes import run_engine_script

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_a_worker_freezes_what_it_holds_then_runs_its_jobs(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    script = textwrap.dedent(
        """
        import gc
        import django
        django.setup()
        from durable.rq.jobs import queue
        from durable.rq.worker import DurableWorker
        q = queue()
        DurableWorker([q], connection=q.connection).work(burst=True)
        print(gc.get_freeze_count())
        """
    )
    done = run_engine_script(script, redis_dispatch.url, connection.settings_dict)
    frozen = int(done.stdout.strip().splitlines()[-1])
    assert frozen > 50_000  # Django and the engine's modules, at least
    assert Execution.objects.get(pk=execution.pk).status == "SUCCEEDED"
    assert gc.get_freeze_count() == 0  # this process is not a worker
