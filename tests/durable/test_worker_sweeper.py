"""A worker sweeps in a thread of its own: no job waits for a sweep (in the work loop, a lone
worker took no job for the 3 to 27 ms a sweep lasted, about once a second, and a burst of timers
due then was as late as the sweep was long)."""

import json
import textwrap

import pytest
from django.db import connection

from durable.client import start_execution
from durable.models import Execution
from tests import workflows
from tests.processes import run_engine_script

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

SCRIPT = textwrap.dedent(
    """
    import json, threading, time
    import django
    django.setup()
    from durable.rq import worker as worker_module
    from durable.rq.jobs import queue

    sweeps = []
    real = worker_module.sweep_with_lock

    def slow_sweep(*args, **kwargs):
        # A sweep that takes two seconds (a slow database), timed, and which thread ran it.
        started = time.time()
        report = real(*args, **kwargs)
        time.sleep(2)
        main = threading.current_thread() is threading.main_thread()
        sweeps.append({"started": started, "ended": time.time(), "main": main})
        return report

    worker_module.sweep_with_lock = slow_sweep
    q = queue()
    worker_module.DurableWorker([q], connection=q.connection).work(burst=True)
    print(json.dumps(sweeps))
    """
)


def test_a_job_queued_while_the_worker_sweeps_runs_at_once(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    done = run_engine_script(SCRIPT, redis_dispatch.url, connection.settings_dict)
    sweeps = json.loads(done.stdout.strip().splitlines()[-1])
    ended = Execution.objects.get(pk=execution.pk)
    assert ended.status == "SUCCEEDED"
    # The worker's first sweep began as it started; the job ran meanwhile, not after it.
    assert sweeps, "the worker never swept"
    first = sweeps[0]
    assert not first["main"], "the sweep ran in the work loop's thread"
    assert ended.ended_at.timestamp() < first["ended"] - 1, (ended.ended_at.timestamp(), first)
    # A stopping worker lets its sweep under way end (the thread is joined, not abandoned).
    assert all(s["ended"] >= s["started"] + 2 for s in sweeps)
