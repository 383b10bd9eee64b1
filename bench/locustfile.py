"""What one API client does under bench/load.py: submit a document, poll its status until it awaits review.

Run by locust (headless) in a process of its own, never imported by the project: locust patches
the standard library with gevent. Every user holds the same API token (LOAD_TOKEN); the documents
are the summarizer benchmark's texts (bench/summaries), in turn. Requests are named "submit" and
"status" so the stats have one row each. A submit answers 202, a status poll 200; anything else
is a failure. A user polls every LOAD_POLL_SECONDS until its document leaves "submitted" and
"summarizing" (the workflow's first stop is "awaiting_review"), then submits the next; one that
has not got there in LOAD_POLL_GIVE_UP_SECONDS moves on (bench/load.py reads the real times
from the database after the run).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

from locust import FastHttpUser, events, task
from locust.env import Environment

HERE = Path(__file__).resolve().parent
POLL_SECONDS = float(os.environ.get("LOAD_POLL_SECONDS", "0.2"))
GIVE_UP_SECONDS = float(os.environ.get("LOAD_POLL_GIVE_UP_SECONDS", "120"))
BEFORE_REVIEW = {"submitted", "summarizing"}


def _documents() -> list[dict[str, str]]:
    documents = []
    for path in sorted((HERE / "summaries").glob("*.txt")):
        head, _, body = path.read_text().partition("=====")
        title = next(line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("title:"))
        documents.append({"title": title, "text": body.strip()})
    return documents


DOCUMENTS = itertools.cycle(_documents())
ENVIRONMENT: list[Environment] = []


@events.init.add_listener
def _keep(environment: Environment, **_: object) -> None:
    ENVIRONMENT.append(environment)


@events.quit.add_listener
def _write_failures(**_: object) -> None:
    """The failures, for bench/load.py (locust's --json-file holds only the requests' stats)."""
    if (path := os.environ.get("LOAD_FAILURES_FILE")) and ENVIRONMENT and ENVIRONMENT[0].stats:
        errors = ENVIRONMENT[0].stats.serialize_errors()
        Path(path).write_text(json.dumps(list(errors.values()), default=str))


class ApiClient(FastHttpUser):
    # geventhttpclient, not requests: the client's own CPU is a small part of a 2-core machine's.
    default_headers = {"Authorization": f"Bearer {os.environ.get('LOAD_TOKEN', '')}"}

    @task
    def submit_then_poll(self) -> None:
        with self.client.post("/api/documents", json=next(DOCUMENTS), name="submit", catch_response=True) as answer:
            if answer.status_code != 202:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                time.sleep(POLL_SECONDS)  # no tight loop of refusals
                return
            status_url = f"/api/documents/{answer.json()['id']}"
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)  # gevent's: locust patched it
            with self.client.get(status_url, name="status", catch_response=True) as answer:
                if answer.status_code != 200:
                    answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                    return
                if answer.json()["status"] not in BEFORE_REVIEW:
                    return
