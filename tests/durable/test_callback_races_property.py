"""A sender and an invocation racing at a callback's deadline, at many interleavings.

Each round: an execution waits on a callback whose deadline is a few tens of milliseconds
away; a sender completes it (or heartbeats, then completes) and an invocation replays, each at
a random moment within a few milliseconds of the deadline, on the real clock. The invocation
is slowed up to 4 ms between reading the callback and deciding, which widens the window a lost
completion hides in (read before the deadline, decided after). Invariant: the handler sees the
outcome the sender was told (accepted: its value; expired: a time-out), and no sender is told
anything else.

Two threads on SQLite; on PostgreSQL the sender is another process (tests/durable/race_sender.py).
Rounds: CALLBACK_RACE_ROUNDS (default 60; raise it by hand for a soak), and more, up to four
times as many, until both outcomes were seen.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections

from durable.client import send_callback_heartbeat, send_callback_success, start_execution
from durable.exceptions import CallbackExpiredError
from durable.models import Execution, Operation
from durable.runtime import run_invocation
from durable.store.base import SqlJournalStore
from tests.durable.test_callback_races import awaits
from tests.processes import ROOT, database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

ROUNDS = int(os.environ.get("CALLBACK_RACE_ROUNDS", "60"))
LEAD = timedelta(milliseconds=40)  # from setting the deadline to the deadline


def send(action: str, callback_id: str) -> str:
    """What the sender is told: accepted, or expired (a heartbeat that is accepted is followed
    at once by a completion, which must then be accepted too)."""
    try:
        if action == "heartbeat":
            send_callback_heartbeat(callback_id)
        send_callback_success(callback_id, "value")
    except CallbackExpiredError:
        return "expired"
    return "accepted"


class ThreadSender:
    """One thread for all rounds, so its database connection is open before its moment."""

    # When it sends, around the deadline (seconds): its commit lands within a few ms of it.
    window = (-0.004, 0.002)

    def __init__(self) -> None:
        self.orders: queue.Queue[tuple[str, str, float] | None] = queue.Queue()
        self.told: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (order := self.orders.get()) is not None:
                action, callback_id, at = order
                time.sleep(max(0.0, at - time.time()))
                self.told.put(send(action, callback_id))
        finally:
            connections.close_all()

    def start(self, action: str, callback_id: str, at: float) -> None:
        self.orders.put((action, callback_id, at))

    def result(self) -> str | None:
        return self.told.get(timeout=10)

    def close(self) -> None:
        self.orders.put(None)
        self.thread.join(10)


class ProcessSender:
    # A completion from another process takes 3 to 12 ms to commit here (eight round trips),
    # so it starts earlier to land around the deadline as often as not.
    window = (-0.009, 0.001)

    def __init__(self) -> None:
        env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict), "DURABLE_DISPATCHER": ""}
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "durable" / "race_sender.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def start(self, action: str, callback_id: str, at: float) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"action": action, "callback_id": callback_id, "at": at}) + "\n")
        self.process.stdin.flush()

    def result(self) -> str | None:
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())["told"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


def drive(execution_id: str) -> Execution:
    for _ in range(50):
        execution = Execution.objects.get(pk=execution_id)
        if execution.status != "RUNNING":
            return execution
        wait = (execution.wake_at - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(min(wait, 0.2))
            continue
        run_invocation(execution_id)
    raise AssertionError(f"execution {execution_id} did not end")


def test_the_handler_sees_what_the_sender_was_told(monkeypatch):
    rng = random.Random(int(os.environ.get("CALLBACK_RACE_SEED", "13")))
    for name in ("load_operation", "load_journal", "acquire_lease"):  # PostgreSQL reads the journal with the lease
        real = getattr(SqlJournalStore, name)

        def slow(*args, _real=real, **kwargs):
            found = _real(*args, **kwargs)
            time.sleep(rng.uniform(0, 0.004))  # the invocation is descheduled after reading
            return found

        monkeypatch.setattr(SqlJournalStore, name, slow)
    sender = ProcessSender() if connection.vendor == "postgresql" else ThreadSender()
    outcomes: dict[tuple[str, str], int] = {}
    rounds = 0
    try:
        # ROUNDS, and more (up to four times as many) until both sides of the race were reached:
        # on a loaded machine the sender's moment slips later, and 60 rounds once all expired.
        while rounds < ROUNDS or (rounds < 4 * ROUNDS and len({seen for _, seen in outcomes}) < 2):
            rounds += 1
            action = rng.choice(["success", "heartbeat"])
            event = {"timeout": 600} if action == "success" else {"heartbeat": 600}
            execution_id = str(start_execution(awaits, event).pk)
            run_invocation(execution_id)
            callback = Operation.objects.get(execution_id=execution_id, type="CALLBACK")
            deadline = datetime.now(UTC) + LEAD
            field = "callback_deadline" if action == "success" else "heartbeat_deadline"
            Operation.objects.filter(pk=callback.pk).update(**{field: deadline})
            Execution.objects.filter(pk=execution_id).update(wake_at=deadline)
            at = deadline.timestamp()
            sender.start(action, callback.callback_id, at + rng.uniform(*sender.window))
            time.sleep(max(0.0, at + rng.uniform(-0.003, 0.001) - time.time()))
            run_invocation(execution_id)
            told = sender.result()
            result = json.loads(drive(execution_id).result)
            seen = "accepted" if "value" in result else "expired"
            assert told == seen, (action, told, result)
            assert result.get("value", "value") == "value"
            outcomes[action, seen] = outcomes.get((action, seen), 0) + 1
    finally:
        sender.close()
    print(f"\ncallback races on {connection.vendor}: {rounds} rounds, outcomes {sorted(outcomes.items())}")
    # Both sides of the race were reached, or the rounds did not test a race at all.
    assert {seen for _, seen in outcomes} == {"accepted", "expired"}, outcomes
