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


# Whether this process's Redis commands first read the answers to the wake-ups it sent (below).
_SETTLE_FIRST = [True]


@pytest.fixture(autouse=True, scope="session")
def _redis_reads_after_own_wake_ups():
    """Every Redis command of the test process runs after the wake-ups it sent. A commit's
    wake-ups go out without waiting for Redis's answer (durable.rq.sender), and Redis does not
    promise to run them before a command another connection sends next, such as a test's look at
    the queue. So each command first reads those answers (`durable.rq.dispatch.settle`), as a
    reader in production that must see them does. Tests of the unanswered sends themselves turn
    this off (`unsettled`). Worker processes are not touched: they run as in production."""
    import redis
    import redis.client

    from durable.rq import sender as wake_ups

    command, pipeline = redis.Redis.execute_command, redis.client.Pipeline.execute

    def execute_command(self, *args, **options):
        if _SETTLE_FIRST[0] and wake_ups.unread():
            wake_ups.settle()
        return command(self, *args, **options)

    def execute(self, *args, **options):
        if _SETTLE_FIRST[0] and wake_ups.unread():
            wake_ups.settle()
        return pipeline(self, *args, **options)

    redis.Redis.execute_command, redis.client.Pipeline.execute = execute_command, execute
    yield
    redis.Redis.execute_command, redis.client.Pipeline.execute = command, pipeline


@pytest.fixture
def unsettled():
    """This test's Redis commands do not wait for the answers to its wake-ups (see above)."""
    _SETTLE_FIRST[0] = False
    yield
    _SETTLE_FIRST[0] = True


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
