"""The engine's settings, read lazily from `settings.DURABLE` so override_settings works."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # How long an invocation's lease lasts without renewal.
    "LEASE_SECONDS": 60,
    # Default execution timeout, in seconds, for functions that do not set one (366 days).
    "EXECUTION_TIMEOUT": 366 * 24 * 3600,
    # Dotted path to f(execution_id, when) that schedules an invocation (RQ through django-rq's
    # queue QUEUE, run by `manage.py durable_worker`); None: nobody does.
    "DISPATCHER": "durable.rq.dispatch",
    # Largest execution input accepted by start_execution, in bytes.
    "MAX_INPUT_BYTES": 256 * 1024,
    # Longest an invocation may run before it is stopped (Lambda's 15 minutes); per function too.
    "INVOCATION_TIMEOUT": 900,
    # Invocations that die in a row at the same step before it counts as a failed attempt; also
    # how many in a row may end with an InvocationError before the execution fails.
    "INVOCATION_DEATHS_LIMIT": 5,
    # Wake-ups closer than this many seconds are scheduled in Redis; later ones wait for the sweep.
    "SCHEDULE_HORIZON": 3600,
    # Seconds between sweeps inside the workers.
    "SWEEP_INTERVAL": 5,
    # A wake-up still not run this many seconds after it was due is dispatched under a new job id.
    "REDISPATCH_GRACE": 15,
    # The django-rq queue that carries invocations.
    "QUEUE": "default",
    # Largest callback result accepted by send_callback_success, in bytes.
    "MAX_CALLBACK_RESULT_BYTES": 256 * 1024,
    # Largest result a step, a child context or a handler may return, in bytes once serialized
    # (Lambda's checkpoint payload limit); a larger one fails its operation at once.
    "MAX_RESULT_BYTES": 256 * 1024,
}


def get(name: str) -> Any:
    return {**DEFAULTS, **getattr(settings, "DURABLE", {})}[name]
