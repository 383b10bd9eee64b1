"""Wake-ups sent to Redis without waiting for the answer.

A wake-up is a nudge: the database says what is due, and the sweep queues again what Redis lost.
The only use of the script's answer when an execution starts (or a callback completes) is a
warning in the log if it failed. Yet the process waited for it: a round trip after each commit,
and on a busy machine the wait for a core once Redis had answered. With two cores, four workers
and the process starting the executions, that wait was a third of each start (bench/workers.py).

So a commit's few due wake-ups are written to a connection of the process's own (`Sender`, one
per Redis client, shared by the process's threads under a lock), and the answers are read later:
before the next send (by then they have come), or when `settle` asks. Nothing is lost that the
wait protected:
* an error answer is logged when read, as before;
* a script Redis no longer has (NOSCRIPT: restarted, or SCRIPT FLUSH) is loaded and the wake-up
  sent again;
* a connection that broke (Redis restarted) is made again and every wake-up whose answer was not
  read is sent again. The scripts are idempotent: a job already waiting or taken is not queued
  twice, and one that ran is at most run once more, and finds nothing due.

What waiting gave and this does not: a wake-up sent on a connection Redis had closed is found
lost only at the process's next send (or `settle`); until then, as for every wake-up a Redis
restart loses, the sweep queues it. And Redis does not promise to run two connections' commands
in the order one process wrote them: a reader in this process that must see the wake-ups it
sent (a test, say) calls `settle` first.

A forked child makes its own sender; the parent reads its own answers. A process that exits
reads its answers first (`atexit`): closing a socket with an answer unread resets the
connection, which could drop a command Redis had not read yet.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from typing import Any

import redis
from redis.exceptions import NoScriptError

log = logging.getLogger("durable.worker")

# Answers left unread at most: past that, the sender reads until half are (a Redis slower than
# the sends then slows them down instead of the unread commands piling up in memory).
MAX_UNREAD = 64

_senders: dict[int, Sender] = {}
_senders_lock = threading.Lock()


def sender(client: Any) -> Sender:
    """This process's sender for `client` (a redis.Redis), made on first use (and in a forked child)."""
    found = _senders.get(id(client))
    if found is None or found.client is not client or found.pid != os.getpid():
        with _senders_lock:
            found = _senders.get(id(client))
            if found is None or found.client is not client or found.pid != os.getpid():
                found = _senders[id(client)] = Sender(client)
    return found


def unread() -> int:
    """How many wake-ups this process sent whose answer it has not read."""
    pid = os.getpid()
    return sum(len(s.unread) for s in list(_senders.values()) if s.pid == pid)


def settle(timeout: float | None = None) -> None:
    """Read the answers to every wake-up this process sent (waiting for them, at most `timeout`
    seconds): once it returns, Redis has run them all, and a command sent after it sees their
    jobs queued. Never raises (answers not read in time are logged and left to the sweep)."""
    pid = os.getpid()
    deadline = None if timeout is None else time.monotonic() + timeout
    for found in list(_senders.values()):
        if found.pid == pid and found.unread:
            found.flush(deadline)


def _forget_after_fork() -> None:
    """A child forked while another thread of its parent was making a sender starts with a lock
    of its own (the parent's copy would stay taken). Its senders are made anew (`sender`)."""
    global _senders_lock
    _senders_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

# At exit, a Redis that hangs holds the process back at most this long.
EXIT_SETTLE_SECONDS = 5.0
atexit.register(settle, EXIT_SETTLE_SECONDS)


class Sender:
    """Script calls written to a connection of its own, their answers read later (module doc)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.connection: Any = None
        self.loaded: set[str] = set()  # the scripts' SHA1s loaded through this connection
        self.scripts: dict[str, str] = {}  # SHA1: the script's text
        # The commands sent whose answers are not read, each with the times it was sent again
        # for a NOSCRIPT answer (once at most: a script that keeps failing is not chased).
        self.unread: deque[tuple[tuple[Any, ...], int]] = deque()

    def call(self, script: Any, keys: list[Any], args: list[Any]) -> None:
        """Send `script` (a redis-py Script) with `keys` and `args`; its answer is read later.
        Raises RedisError if Redis cannot be reached (the command is then dropped)."""
        with self.lock:
            self.scripts[script.sha] = script.script
            if self.unread:
                self.read(wait=False)
            self._send([(("EVALSHA", script.sha, len(keys), *keys, *args), 0)])
            if len(self.unread) > MAX_UNREAD:
                self.read(wait=True, keep=MAX_UNREAD // 2)

    def flush(self, deadline: float | None = None) -> None:
        """Read every answer still unread (waiting for them, until `deadline`, monotonic time).
        Never raises."""
        with self.lock:
            try:
                self.read(wait=True, deadline=deadline)
            except redis.RedisError as exc:
                count = len(self.unread)
                log.warning("could not read Redis's answers to %d wake-up(s) (%s); the sweep will", count, exc)
                self.unread.clear()

    def read(self, *, wait: bool, keep: int = 0, deadline: float | None = None) -> None:
        """Read the answers that have come (all that are due if `wait`, until `keep` remain;
        raises TimeoutError if one has not come by `deadline`)."""
        while len(self.unread) > keep:
            if deadline is not None and not self._answered_by(deadline):
                raise redis.TimeoutError("Redis did not answer in time")
            try:
                if not wait and not self.connection.can_read(timeout=0):
                    return
                self.connection.read_response()
            except NoScriptError as exc:
                command, again = self.unread.popleft()
                self.loaded.discard(command[1])
                if again:
                    log.warning("Redis refused a wake-up (%s); the sweep will queue it", exc)
                else:
                    self._send([(command, 1)])  # loads the script again first
                continue
            except redis.ResponseError as exc:
                self.unread.popleft()
                log.warning("Redis refused a wake-up (%s); the sweep will queue it", exc)
                continue
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._send_again()
                continue
            self.unread.popleft()

    def _answered_by(self, deadline: float) -> bool:
        """Whether an answer (or the connection's end) has come by `deadline`."""
        try:
            return bool(self.connection.can_read(timeout=max(0.0, deadline - time.monotonic())))
        except (redis.ConnectionError, OSError):
            return True  # read it: the read finds the connection broken

    def _send(self, commands: list[tuple[tuple[Any, ...], int]], *, again: bool = True) -> None:
        try:
            if self.connection is None:
                self.connection = self.client.connection_pool.connection_class(
                    **self.client.connection_pool.connection_kwargs
                )
                self.loaded = set()
            for command, tries in commands:
                if command[1] not in self.loaded:
                    # Loaded through this connection before its first call: its answer comes
                    # after those of the commands already sent, which are read first.
                    self.read(wait=True)
                    self.connection.send_command("SCRIPT", "LOAD", self.scripts[command[1]])
                    self.connection.read_response()
                    self.loaded.add(command[1])
                self.connection.send_command(*command, check_health=False)
                self.unread.append((command, tries))
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            if not again:
                raise
            self._send_again(commands)

    def _send_again(self, more: list[tuple[tuple[Any, ...], int]] | None = None) -> None:
        """The connection broke: send every command whose answer was not read (and `more`) on a
        new one. Raises RedisError (the commands dropped) if that fails too."""
        commands = [*self.unread, *[c for c in more or [] if c not in self.unread]]
        self.unread.clear()
        self._close()
        try:
            self._send(commands, again=False)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self.unread.clear()
            self._close()
            raise redis.ConnectionError(f"{len(commands)} wake-up(s) not sent: {exc}") from exc

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.disconnect()
        self.connection = None
