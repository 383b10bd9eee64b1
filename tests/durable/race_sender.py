"""The sender of test_callback_races_property.py in a process of its own (PostgreSQL runs).

Reads one JSON line per round ({"action", "callback_id", "at"}), sleeps until `at` (Unix
time), sends, and writes {"told": "accepted" | "expired"}.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from tests.durable.test_callback_races_property import send  # noqa: E402

print("ready", flush=True)
for line in sys.stdin:
    order = json.loads(line)
    time.sleep(max(0.0, order["at"] - time.time()))
    print(json.dumps({"told": send(order["action"], order["callback_id"])}), flush=True)
