"""Completes pending callbacks from another process until told to stop (a file appears)."""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.db import close_old_connections  # noqa: E402

from durable.client import send_callback_success  # noqa: E402
from durable.exceptions import DurableExecutionsError  # noqa: E402
from durable.models import Operation  # noqa: E402

stop_file = Path(sys.argv[1])
completed = 0
while not stop_file.exists():
    try:
        pending = list(
            Operation.objects.filter(type="CALLBACK", status="STARTED").values_list("callback_id", flat=True)[:100]
        )
        for callback_id in pending:
            try:
                send_callback_success(callback_id, "approved")
                completed += 1
            except DurableExecutionsError:
                pass  # completed meanwhile or timed out: a chaos run is allowed that
    except Exception as exc:  # the database or Redis may be restarting
        print(f"completer: {type(exc).__name__}: {exc}", flush=True)
        close_old_connections()
        time.sleep(0.5)
    time.sleep(0.2)
print(f"completer: completed {completed} callbacks", flush=True)
