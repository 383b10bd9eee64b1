import pytest


@pytest.fixture(autouse=True)
def _durable_settings(settings):
    # Tests drive invocations themselves unless a test opts into a dispatcher.
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "DISPATCHER": None}
    # Test users need no slow password hashing (production keeps Django's PBKDF2 default).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The API's rate limit counts in this process's cache unless a test gives it Redis.
    if hasattr(settings, "API_RATE_LIMIT"):  # the product's settings (not the engine's own tests')
        settings.API_RATE_LIMIT = {**settings.API_RATE_LIMIT, "CACHE": "default"}
    yield
    # Delivery marks and deliveries this process still holds name this test's rows: not the next test's.
    from durable import sinks

    with sinks._held_lock:
        sinks._held.clear()
        sinks._deliveries.clear()


@pytest.fixture(scope="session")
def redis_server():
    from tests.processes import RedisServer

    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def workers(redis_server, settings, transactional_db):
    """Start real worker processes against the test database and a real Redis.

    Call `workers(n)` to start n more; all are stopped (or killed) at the end.
    """
    import os

    from django.db import connection

    from tests.processes import Worker, database_url

    settings.RQ_QUEUES["default"]["URL"] = redis_server.url  # django_rq reads this dict
    settings.DURABLE = {
        **getattr(settings, "DURABLE", {}),
        "DISPATCHER": "durable.rq.dispatch",
        "LEASE_SECONDS": 3,
        "SWEEP_INTERVAL": 1,
    }
    redis_server.client().flushall()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": redis_server.url,
        "DURABLE_LEASE_SECONDS": "3",
        "DURABLE_SWEEP_INTERVAL": "1",
        "DJANGO_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    started: list[Worker] = []

    def start(count: int = 1, args: list[str] | None = None, **extra_env: str) -> list[Worker]:
        new = [Worker({**env, **extra_env}, f"w{len(started) + i}-{os.getpid()}", args) for i in range(count)]
        started.extend(new)
        return new

    start.all = started  # type: ignore[attr-defined]
    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def redis_dispatch(redis_server, settings):
    """The RQ dispatcher on the session's real Redis, emptied; timers up to an hour ahead."""
    settings.RQ_QUEUES["default"]["URL"] = redis_server.url
    settings.DURABLE = {
        **getattr(settings, "DURABLE", {}),
        "DISPATCHER": "durable.rq.dispatch",
        "SCHEDULE_HORIZON": 3600,
    }
    redis_server.client().flushall()
    return redis_server


@pytest.fixture
def signals_sent():
    """A receiver of `durable.signals.execution_status_changed`, as a product has (without one,
    and without sinks, no event is written); yields what it received."""
    from durable.signals import execution_status_changed

    seen: list[dict] = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    execution_status_changed.connect(receiver)
    yield seen
    execution_status_changed.disconnect(receiver)
