"""Settings of the engine (and a helper for apps built on it): each setting is declared once.

A setting's value is, in order: the project's `settings.DURABLE[key]` (looked up again when
Django's settings object changes, so `override_settings` works), the environment variable it declares
(12-factor: `DURABLE_*`, read on every call), its default. A project needs to write nothing
for the defaults to work; its settings module never restates them. `check()` parses every
variable at start-up so a bad one fails there, by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def boolean(text: str) -> bool:
    """1/true/yes/on (any case) is True; 0/false/no/off/empty is False; anything else is refused."""
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def optional(text: str) -> str | None:
    """Empty means "none"."""
    return text or None


def timer_lead(text: Any) -> float:
    """Milliseconds, 0 to 1,000 (text or a number): a wake-up the timer mover queued earlier
    than that would find the worker's nap too long (durable.rq.jobs.EARLY_TOLERANCE is 1.5 s)."""
    value = float(text)
    if not 0 <= value <= 1000:
        raise ValueError(f"not between 0 and 1000 ms: {text!r}")
    return value


def json_object(text: str) -> dict[str, Any]:
    """A JSON object (empty means {})."""
    import json

    value = json.loads(text) if text.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting: its default (a value, or a function of the project's settings read when the
    value is needed), the environment variable that overrides the default, and its parser."""

    default: Any
    env: str | None = None
    parse: Callable[[str], Any] = str
    doc: str = ""
    # Checks the value whatever its source (the project's dict too, which `parse` never sees) at
    # start-up (`check`): raises ValueError or TypeError for a bad one.
    valid: Callable[[Any], Any] | None = None


_DECLARED = object()


class AppSettings:
    """The settings of one app, under `settings.<name>` (a dict) and `<name>_*` variables."""

    def __init__(self, name: str, declared: Mapping[str, Setting]) -> None:
        self.name = name
        self.declared = dict(declared)
        # The project's dict, looked up again only when Django's settings object is another
        # (override_settings and the test settings fixture put one in place, and back): a look-up
        # of a setting the project does not have raises and catches inside Django's LazySettings,
        # a few microseconds on paths that read settings many times per invocation.
        self._overrides: Mapping[str, Any] = {}
        self._overrides_of: object = None
        # Variables' parsed values, by their text: the environment is still read on every call.
        self._parsed: dict[tuple[str, str], Any] = {}

    def from_environment(self, key: str, default: Any = _DECLARED) -> Any:
        """The value without the project's settings dict: the variable's, else the default (the
        declared one, or `default`: a settings module reads this before settings exist)."""
        setting = self.declared[key]
        text = None if setting.env is None else _variable(setting.env)
        if text is None:
            if default is not _DECLARED:
                return default
            return setting.default(settings) if callable(setting.default) else setting.default
        parsed = self._parsed.get((key, text), _DECLARED)
        if parsed is not _DECLARED:
            return parsed
        try:
            parsed = setting.parse(text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{setting.env}={text!r}: {exc}") from None
        if parsed is None or isinstance(parsed, str | int | float):  # immutable: safe to share
            self._parsed[(key, text)] = parsed
        return parsed

    def get(self, key: str) -> Any:
        if key not in self.declared:
            raise KeyError(f"{self.name} has no setting {key!r}")
        overrides = self._overrides
        # What Django's lazy settings stand for now (another object under override_settings),
        # read past LazyObject's own __getattribute__.
        if object.__getattribute__(settings, "_wrapped") is not self._overrides_of:
            overrides = self._overrides = getattr(settings, self.name, None) or {}
            self._overrides_of = object.__getattribute__(settings, "_wrapped")  # (set up by the look-up)
        return overrides[key] if key in overrides else self.from_environment(key)

    def check(self) -> None:
        """Parse every setting now; raises ImproperlyConfigured naming the first bad one."""
        unknown = set(getattr(settings, self.name, None) or {}) - set(self.declared)
        if unknown:
            raise ImproperlyConfigured(f"settings.{self.name} has unknown keys: {', '.join(sorted(unknown))}")
        for key, setting in self.declared.items():
            value = self.get(key)
            if setting.valid is not None:
                try:
                    setting.valid(value)
                except (TypeError, ValueError) as exc:
                    raise ImproperlyConfigured(f"{self.name}[{key!r}] = {value!r}: {exc}") from None


def _environ() -> Mapping[str, str]:
    return os.environ


# os.environ's own look-up encodes the name, and for a variable that is not set (most of ours)
# raises and catches KeyError: about a microsecond, and a resume reads 16 settings. On POSIX,
# CPython keeps os.environ's encoded mapping (`_data`) up to date with every change made
# through os.environ, and a look-up there takes a twentieth of that.
_DATA: Any = getattr(os.environ, "_data", None) if os.name == "posix" else None
_ENCODED: dict[str, bytes] = {}


def _variable(name: str) -> str | None:
    """`os.environ.get(name)`."""
    if _DATA is None:
        return os.environ.get(name)
    encoded = _ENCODED.get(name)
    if encoded is None:
        encoded = _ENCODED[name] = os.fsencode(name)
    value = _DATA.get(encoded)
    return None if value is None else os.fsdecode(value)


SETTINGS = AppSettings(
    "DURABLE",
    {
        "LEASE_SECONDS": Setting(
            60.0, "DURABLE_LEASE_SECONDS", float, "How long an invocation's lease lasts without renewal."
        ),
        "POSTGRES_PREPARED_STATEMENTS": Setting(
            True,
            "DURABLE_POSTGRES_PREPARED_STATEMENTS",
            boolean,
            "PostgreSQL: run the journal's statements as statements prepared once per connection (no "
            "planning per write). A process whose statements go missing (a pooler in transaction mode) "
            "stops preparing by itself; false never prepares.",
        ),
        "EXECUTION_TIMEOUT": Setting(
            366 * 24 * 3600, "DURABLE_EXECUTION_TIMEOUT", int, "Seconds, for functions that set none (366 days)."
        ),
        "DISPATCHER": Setting(
            "durable.rq.dispatch",
            "DURABLE_DISPATCHER",
            optional,
            "Dotted path to f(execution_id, when) that schedules an invocation (RQ through django-rq's "
            "queue QUEUE, run by `manage.py durable_worker`); empty: nobody does.",
        ),
        "MAX_INPUT_BYTES": Setting(256 * 1024, None, int, "Largest execution input start_execution accepts."),
        "INVOCATION_TIMEOUT": Setting(
            900,
            "DURABLE_INVOCATION_TIMEOUT",
            int,
            "Longest an invocation may run (Lambda's 15 minutes); per function too.",
        ),
        "INVOCATION_DEATHS_LIMIT": Setting(
            5,
            "DURABLE_INVOCATION_DEATHS_LIMIT",
            int,
            "Invocations that die in a row at the same step before it counts as a failed attempt; also how "
            "many in a row may end with an InvocationError before the execution fails.",
        ),
        "SCHEDULE_HORIZON": Setting(
            3600,
            "DURABLE_SCHEDULE_HORIZON",
            int,
            "Wake-ups closer than this (s) go to Redis; later ones wait for the sweep.",
        ),
        "SWEEP_INTERVAL": Setting(5.0, "DURABLE_SWEEP_INTERVAL", float, "Seconds between sweeps inside the workers."),
        "TIMER_LEAD_MS": Setting(
            5.0,
            "DURABLE_TIMER_LEAD_MS",
            timer_lead,
            "Milliseconds before its time the timer mover queues a wake-up (0 to 1,000): the worker "
            "takes the lease and reads the journal meanwhile, then naps until the time (the code after "
            "a wait never runs early). 0: queued at its time.",
            valid=timer_lead,
        ),
        # Retention (durable.retention): how long ended executions are kept, and their purge.
        "RETENTION_DAYS": Setting(
            30,
            "DURABLE_RETENTION_DAYS",
            int,
            "Days an ended execution is kept (1 to 90) for functions that set no retention_period.",
        ),
        "RETENTION_BY_FUNCTION": Setting(
            lambda _: {},
            "DURABLE_RETENTION_BY_FUNCTION",
            json_object,
            "{function name: days}: overrides the default and the functions' own retention_period.",
        ),
        "RETENTION_HOLD": Setting(
            None,
            "DURABLE_RETENTION_HOLD",
            optional,
            "Dotted path to f(execution_ids) -> ids to keep although expired (a product row needs them).",
        ),
        "PURGE_INTERVAL": Setting(
            3600.0, "DURABLE_PURGE_INTERVAL", float, "Seconds between purges inside the workers; 0: never."
        ),
        "PURGE_BATCH_SIZE": Setting(200, "DURABLE_PURGE_BATCH_SIZE", int, "Executions deleted per transaction."),
        "PURGE_MAX_BATCHES": Setting(
            10, "DURABLE_PURGE_MAX_BATCHES", int, "Batches one periodic purge deletes at most (the rest: next run)."
        ),
        "REDISPATCH_GRACE": Setting(
            15,
            "DURABLE_REDISPATCH_GRACE",
            int,
            "A wake-up still not run this long after it was due is dispatched anew.",
        ),
        "QUEUE": Setting("default", "DURABLE_QUEUE", str, "The django-rq queue that carries invocations."),
        "MAX_CALLBACK_RESULT_BYTES": Setting(256 * 1024, None, int, "Largest callback result accepted."),
        "MAX_RESULT_BYTES": Setting(
            256 * 1024,
            None,
            int,
            "Largest result a step, child context or handler may return once serialized (Lambda's "
            "checkpoint payload limit); a larger one fails its operation at once.",
        ),
        # Events (durable.sinks): where execution status changes go after their commit.
        "EVENT_SINKS": Setting(
            [],
            "DURABLE_EVENT_SINKS",
            json.loads,
            'Sinks besides the signal: [{"type": "webhook", "url": ..., "secret_env": ...}, {"type": '
            '"eventbridge", "event_bus_name": ..., "source": ..., "region": ...}], each with an optional "name".',
        ),
        "EVENT_WEBHOOK_URL": Setting("", "DURABLE_EVENT_WEBHOOK_URL", str, "A webhook sink, the simple case."),
        "EVENT_WEBHOOK_SECRET": Setting(
            "", "DURABLE_EVENT_WEBHOOK_SECRET", str, "The webhook sinks' signing secret (unless a sink names its own)."
        ),
        "EVENTBRIDGE_BUS": Setting("", "DURABLE_EVENTBRIDGE_BUS", str, "An EventBridge sink on this bus, simply."),
        "EVENT_SOURCE": Setting("durable", "DURABLE_EVENT_SOURCE", str, "The events' `source`."),
        "EVENT_WEBHOOK_ALLOW_HTTP": Setting(
            lambda settings: bool(settings.DEBUG), "DURABLE_EVENT_WEBHOOK_ALLOW_HTTP", boolean, "http:// sink URLs."
        ),
        "EVENT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": Setting(
            False,
            "DURABLE_EVENT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
            boolean,
            "Sink URLs on loopback or private addresses (tests, a sidecar).",
        ),
        "EVENT_WEBHOOK_CA_FILE": Setting("", "DURABLE_EVENT_WEBHOOK_CA_FILE", str, "CA bundle for https sinks."),
        "EVENT_DELIVERY_TIMEOUT": Setting(
            5.0, "DURABLE_EVENT_DELIVERY_TIMEOUT", float, "Seconds one attempt to a sink may take."
        ),
        "EVENT_MAX_ATTEMPTS": Setting(
            8, "DURABLE_EVENT_MAX_ATTEMPTS", int, "Attempts per event and sink before its delivery is FAILED."
        ),
        "EVENT_RETRY_INITIAL_SECONDS": Setting(
            2.0, "DURABLE_EVENT_RETRY_INITIAL_SECONDS", float, "Backoff after the first failed attempt (x2 each)."
        ),
        "EVENT_RETRY_MAX_SECONDS": Setting(300.0, "DURABLE_EVENT_RETRY_MAX_SECONDS", float, "Longest backoff."),
        "EVENT_AFTER_COMMIT_GRACE": Setting(
            30.0,
            "DURABLE_EVENT_AFTER_COMMIT_GRACE",
            float,
            "Seconds the workers' pass leaves a new event to the process that committed it.",
        ),
        "EVENT_BATCH": Setting(100, "DURABLE_EVENT_BATCH", int, "Deliveries one pass of the workers tries."),
        "EVENT_RETENTION_SECONDS": Setting(
            7 * 24 * 3600,
            "DURABLE_EVENT_RETENTION_SECONDS",
            int,
            "Delivered events are deleted from the outbox this long after delivery.",
        ),
        "OPERATION_EVENTS": Setting(
            False,
            "DURABLE_OPERATION_EVENTS",
            boolean,
            "Send an event for each completed operation (per function: @durable_execution(operation_events=...)).",
        ),
        # Metrics and liveness (durable.metrics, durable.scrape, durable.rq.liveness).
        "METRICS_TOKEN": Setting(
            None,
            "DURABLE_METRICS_TOKEN",
            optional,
            "Bearer token that may read /metrics (staff users may without it); empty: staff only.",
        ),
        "METRICS_MULTIPROC_DIR": Setting(
            None,
            "PROMETHEUS_MULTIPROC_DIR",
            optional,
            "Directory where every process writes its metrics for /metrics to add up (prometheus-client's "
            "multiprocess mode: the variable must be in each process's environment when it starts).",
        ),
        "WORKER_HEARTBEAT_FILE": Setting(
            lambda settings: _default_heartbeat_file(),
            "DURABLE_WORKER_HEARTBEAT_FILE",
            str,
            "File the worker processes touch every few seconds; `durable_worker --check` reads its age.",
        ),
        "WORKER_HEARTBEAT_MAX_AGE": Setting(
            30.0,
            "DURABLE_WORKER_HEARTBEAT_MAX_AGE",
            float,
            "Seconds after which `durable_worker --check` calls the heartbeat stale.",
        ),
        "TRACING": Setting(
            False,
            "DURABLE_TRACING",
            boolean,
            "OpenTelemetry spans per invocation and step, exported over OTLP/HTTP (the OTEL_* variables "
            "say where); on by itself when OTEL_EXPORTER_OTLP_ENDPOINT is set or a tracer provider is.",
        ),
        "OTLP_ENDPOINT": Setting(
            None, "OTEL_EXPORTER_OTLP_ENDPOINT", optional, "Where spans go (OpenTelemetry's own variable)."
        ),
    },
)


def _default_heartbeat_file() -> str:
    import tempfile

    return f"{tempfile.gettempdir()}/durable-worker.heartbeat"


def get(name: str) -> Any:
    return SETTINGS.get(name)


def environment_secret(variable: str) -> str:
    """The value of the environment variable a setting names (a sink's `secret_env`); empty if unset."""
    return _environ().get(variable, "")
