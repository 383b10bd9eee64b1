"""gunicorn's settings file (`gunicorn -c python:config.gunicorn`, as scripts/entrypoint runs it).

Only a hook: a web worker process that ends is marked dead in the metrics' multiprocess
directory (durable.metrics), as prometheus-client's multiprocess mode asks.
"""

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from durable.metrics import process_ended

    process_ended(worker.pid)
