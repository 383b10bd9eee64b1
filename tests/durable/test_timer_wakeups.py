"""The timer mover on a real Redis: it sleeps until the earliest wake-up instead of polling, an
earlier one scheduled meanwhile wakes it, it releases a wake-up its lead (TIMER_LEAD_MS) before
its time and never sooner, it costs next to nothing while idle, a wake-up Redis loses is the
sweep's, and another worker takes over when the mover's holder is killed; the code after a wait
never runs before its time. Bounds are for correctness, not speed."""

import json
import random
import threading
import time
from datetime import timedelta

import pytest

from durable import clock
from durable.client import start_execution
from durable.models import Execution, Operation
from durable.rq.dispatch import dispatch, schedule_wake_ups
from durable.rq.jobs import job_id, queue, timers_channel, timers_key
from durable.rq.timers import TIMER_LOCK_KEY, TimerPoller, timer_lead
from tests import workflows
from tests.processes import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def _workers_see_committed_rows(transactional_db):
    """Worker processes and the mover's thread read what the test commits."""


@pytest.fixture
def mover(redis_dispatch):
    """A timer thread in this process (the worker's own class), holding the lock once started."""
    started: list[TimerPoller] = []

    def start(name: str = "mover") -> TimerPoller:
        poller = TimerPoller(queue().connection, name)
        poller.start()
        started.append(poller)
        wait_until(lambda: redis_dispatch.client().get(TIMER_LOCK_KEY) == name.encode(), 5, message="the lock")
        return poller

    yield start
    for poller in started:
        poller.stop()
    for poller in started:
        poller.join(5)


class Arrivals(threading.Thread):
    """Takes job ids off the queue as the mover releases them, noting when each arrived."""

    def __init__(self, connection) -> None:
        super().__init__(daemon=True)
        self.connection = connection
        self.key = queue().key
        self.arrived: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            taken = self.connection.blpop([self.key], 0.2)
            if taken is not None:
                self.arrived[taken[1].decode()] = time.time()

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


@pytest.mark.parametrize("lead_ms", [None, "0"], ids=["default lead", "no lead"])
def test_a_wake_up_is_never_released_sooner_than_its_lead_before_its_time(redis_dispatch, mover, monkeypatch, lead_ms):
    if lead_ms is not None:
        monkeypatch.setenv("DURABLE_TIMER_LEAD_MS", lead_ms)
    lead = timer_lead()
    assert lead == (0.005 if lead_ms is None else 0.0)
    mover()
    arrivals = Arrivals(redis_dispatch.client())
    arrivals.start()
    rng = random.Random(19)
    due: dict[str, float] = {}
    try:
        # Many timers at random times within the next 1.5 s, scheduled in random order and at
        # random moments, so that many arrive while the mover sleeps until a later one.
        for i in range(150):
            when = time.time() + rng.uniform(0.01, 1.5)
            wake_up = f"durable-{i:036d}-{int(when * 1000)}"
            schedule_wake_ups({wake_up: when})
            due[wake_up] = when
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, 0.02))
        wait_until(lambda: len(arrivals.arrived) == len(due), 10, message="every wake-up released")
    finally:
        arrivals.stop()
    early = {w: due[w] - at for w, at in arrivals.arrived.items() if at < due[w] - lead}
    assert not early, f"released sooner than {lead} s before their time (seconds before it): {early}"
    assert redis_dispatch.client().zcard(timers_key(queue().name)) == 0


def test_a_wake_up_is_released_its_lead_before_its_time(redis_dispatch, mover, monkeypatch):
    # A lead far longer than the mover takes to wake and move (the default is 5 ms), so that
    # "before its time" holds on any machine: a wake-up lands in the lead's window.
    monkeypatch.setenv("DURABLE_TIMER_LEAD_MS", "400")
    mover()
    arrivals = Arrivals(redis_dispatch.client())
    arrivals.start()
    due: dict[str, float] = {}
    try:
        for i, ahead in enumerate((1.0, 1.3, 1.6)):
            when = time.time() + ahead
            wake_up = f"durable-lead-{i}-{int(when * 1000)}"
            schedule_wake_ups({wake_up: when})
            due[wake_up] = when
        wait_until(lambda: len(arrivals.arrived) == len(due), 10, message="every wake-up released")
    finally:
        arrivals.stop()
    for wake_up, when in due.items():
        assert when - 0.4 <= arrivals.arrived[wake_up] < when, (wake_up, when - arrivals.arrived[wake_up])


def test_a_burst_of_timers_is_moved_in_few_passes_each_at_least_half_its_lead_early(redis_dispatch, mover, monkeypatch):
    # Timers 20 ms apart with a 200 ms lead (a burst at the bench's scale is 1.5 ms apart with
    # 5 ms): a pass each would be 20 passes; at most one per half lead, each moving what comes due
    # within the lead, about 400 / 100. The lead is long enough for "before its time" to hold on a
    # slow machine.
    monkeypatch.setenv("DURABLE_TIMER_LEAD_MS", "200")
    poller = mover()
    arrivals = Arrivals(redis_dispatch.client())
    arrivals.start()
    due: dict[str, float] = {}
    try:
        first = time.time() + 1.0
        burst = {f"durable-burst-{i}-{int(first * 1000) + 20 * i}": first + 0.02 * i for i in range(20)}
        schedule_wake_ups(burst)
        due.update(burst)
        wait_until(lambda: len(arrivals.arrived) == len(due), 10, message="every wake-up released")
    finally:
        arrivals.stop()
    assert poller.moves <= 8, poller.moves
    lead = timer_lead()
    early = {w: round(due[w] - at, 3) for w, at in arrivals.arrived.items() if at < due[w] - lead}
    assert not early, f"released sooner than {lead} s before their time: {early}"
    late = {w: round(due[w] - at, 3) for w, at in arrivals.arrived.items() if at > due[w] - lead / 4}
    assert not late, f"released less than a quarter of the lead before their time: {late}"


def test_an_earlier_timer_scheduled_while_the_mover_sleeps_wakes_it(redis_dispatch, mover, monkeypatch):
    # A lock renewed every 10 s: without the nudge, the mover would sleep until the later timer.
    monkeypatch.setattr("durable.rq.timers.TIMER_LOCK_MS", 30_000)
    mover()
    arrivals = Arrivals(redis_dispatch.client())
    arrivals.start()
    try:
        later = time.time() + 4.0
        schedule_wake_ups({"durable-later-1": later})
        time.sleep(0.3)  # the mover now sleeps until `later`
        earlier = time.time() + 0.3
        schedule_wake_ups({"durable-earlier-1": earlier})
        wait_until(lambda: "durable-earlier-1" in arrivals.arrived, 10, message="the earlier timer")
        lead = timer_lead()
        assert earlier - lead <= arrivals.arrived["durable-earlier-1"] < earlier + 1.0
        assert "durable-later-1" not in arrivals.arrived  # still waiting for its own time
        wait_until(lambda: "durable-later-1" in arrivals.arrived, 10, message="the later timer")
        assert later - lead <= arrivals.arrived["durable-later-1"] < later + 1.0
    finally:
        arrivals.stop()


def test_only_a_new_earliest_timer_publishes_a_nudge(redis_dispatch):
    nudges = redis_dispatch.client().pubsub(ignore_subscribe_messages=True)
    nudges.subscribe(timers_channel(queue().name))
    wait_until(lambda: nudges.get_message(timeout=0.1) is None and nudges.subscribed, 5)

    def published() -> int:
        count = 0
        while nudges.get_message(timeout=0.2) is not None:
            count += 1
        return count

    now = time.time()
    schedule_wake_ups({"durable-a-1": now + 60})
    assert published() == 1  # the first: the mover may sleep until then at most
    schedule_wake_ups({"durable-b-1": now + 120, "durable-c-1": now + 90})
    assert published() == 0  # later than the earliest: the mover wakes in time anyway
    schedule_wake_ups({"durable-d-1": now + 100, "durable-e-1": now + 30})
    assert published() == 1  # one of them earlier than all
    assert redis_dispatch.client().zcard(timers_key(queue().name)) == 5
    nudges.close()


def test_the_mover_sends_few_commands_while_a_far_timer_waits(redis_dispatch, mover):
    client = redis_dispatch.client()
    schedule_wake_ups({"durable-far-1": time.time() + 600})
    mover()
    time.sleep(0.5)  # the start's own commands (subscribe, first take) pass before the count
    client.config_resetstat()
    time.sleep(2.0)  # the window whose commands are counted
    stats = client.info("commandstats")
    calls = {name: stat["calls"] for name, stat in stats.items() if name not in ("cmdstat_info", "cmdstat_config")}
    # Polling every 20 ms sent 100 scripts (each a ZRANGEBYSCORE) in 2 s; sleeping until the timer,
    # waking once a second to renew the lock, sends two scripts a second (the counts include the
    # commands the scripts call).
    assert calls.get("cmdstat_evalsha", 0) <= 6, calls
    assert calls.get("cmdstat_zrangebyscore", 0) <= 3, calls
    assert sum(calls.values()) <= 20, calls
    assert client.zcard(timers_key(queue().name)) == 1


def test_a_timer_the_mover_has_not_reached_waits_for_a_fake_clock(redis_dispatch, mover):
    # Tests drive time with a fake clock: the mover compares due times with the engine's clock.
    fake = clock.FakeClock()
    with clock.use_clock(fake):
        mover()
        arrivals = Arrivals(redis_dispatch.client())
        arrivals.start()
        try:
            when = fake.current + timedelta(seconds=30)
            schedule_wake_ups({"durable-faked-1": when.timestamp()})
            time.sleep(1.5)  # a window for a release that must not happen (the mover wakes each second)
            assert arrivals.arrived == {}  # 30 s of the engine's clock have not passed
            fake.advance_to(when)
            wait_until(lambda: "durable-faked-1" in arrivals.arrived, 5, message="the timer, once its time came")
        finally:
            arrivals.stop()


def finished(execution_id) -> Execution | None:
    execution = Execution.objects.get(pk=execution_id)
    return execution if execution.status != "RUNNING" else None


@pytest.mark.parametrize("lead_ms", [None, "400"], ids=["default lead", "every wake-up early"])
def test_timers_resumed_by_workers_never_run_their_next_step_early(workers, lead_ms):
    # With a 400 ms lead every wake-up reaches a worker long before its time: the worker takes
    # the lease, reads the journal and naps, and the step after the wait still runs after it.
    workers(2, **({"DURABLE_TIMER_LEAD_MS": lead_ms} if lead_ms else {}))
    rng = random.Random(7)
    executions = []
    for _ in range(24):
        executions.append(start_execution(workflows.timed, {"seconds": rng.choice([1, 2])}).pk)
        time.sleep(rng.uniform(0, 0.05))
    for execution_id in executions:
        done = wait_until(lambda e=execution_id: finished(e), 60, message="the timed executions")
        assert done.status == "SUCCEEDED", done.error
        wait = Operation.objects.get(execution_id=execution_id, name="timer")
        after = json.loads(done.result)["after"]
        assert after >= wait.wait_until.timestamp()
        assert after < wait.wait_until.timestamp() + 5  # on time, give or take a loaded machine
        assert done.invocation_count == 2  # an early wake-up naps: it does not suspend again


def test_a_wake_up_redis_lost_is_recovered_by_the_sweep(workers, redis_server):
    workers(1)  # sweeping every second: a due execution is dispatched again at once
    execution = start_execution(workflows.timed, {"seconds": 2})
    wait = wait_until(
        lambda: Operation.objects.filter(execution_id=execution.pk, name="timer", status="STARTED").first(),
        30,
        message="the wait",
    )
    client = redis_server.client()
    wake_up = job_id(str(execution.pk), wait.wait_until)
    wait_until(lambda: client.zscore(timers_key(queue().name), wake_up) is not None, 10, message="the timer")
    assert client.zrem(timers_key(queue().name), wake_up) == 1  # Redis loses it
    done = wait_until(lambda: finished(execution.pk), 30, message="the sweep's re-dispatch")
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result)["after"] >= wait.wait_until.timestamp()


def test_another_worker_moves_the_timers_when_the_holder_is_killed(workers, redis_server):
    pool = workers(2, DURABLE_SWEEP_INTERVAL="60")  # the sweep would dispatch the due execution too
    client = redis_server.client()
    holder_name = wait_until(lambda: client.get(TIMER_LOCK_KEY), 30, message="a timers lock holder").decode()
    holder = next(w for w in pool if holder_name.startswith(w.name))
    execution = start_execution(workflows.timed, {"seconds": 2})
    wait_until(
        lambda: Operation.objects.filter(execution_id=execution.pk, name="timer", status="STARTED").exists(),
        30,
        message="the wait",
    )
    wait_until(lambda: client.zcard(timers_key(queue().name)) == 1, 10, message="the timer")
    holder.kill()
    killed_at = time.time()
    done = wait_until(lambda: finished(execution.pk), 30, message="the timer, moved by the other worker")
    assert done.status == "SUCCEEDED", done.error
    new_holder = client.get(TIMER_LOCK_KEY)
    assert new_holder is not None
    new_holder = new_holder.decode()
    assert not new_holder.startswith(holder.name)
    # The lock lapses within 3 s and the other worker checks for it twice a second.
    assert json.loads(done.result)["after"] - killed_at < 3 + 0.5 + 2


def test_dispatch_schedules_a_near_wake_up_with_its_nudge(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    queue().empty()
    nudges = redis_dispatch.client().pubsub(ignore_subscribe_messages=True)
    nudges.subscribe(timers_channel(queue().name))
    wait_until(lambda: nudges.get_message(timeout=0.1) is None and nudges.subscribed, 5)
    soon = clock.now() + timedelta(minutes=10)
    dispatch(str(execution.pk), soon)
    message = nudges.get_message(timeout=2)
    assert message is not None
    assert float(message["data"]) == soon.timestamp()
    score = redis_dispatch.client().zscore(timers_key(queue().name), job_id(str(execution.pk), soon))
    assert score == soon.timestamp()  # to the microsecond, as the database has it
    nudges.close()
