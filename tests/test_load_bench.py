"""bench/load.py at a tiny size: the whole stack comes up, answers every request, and goes away.

A smoke test of the bench, not a measurement: it checks that no request failed, that the JSON
has every figure, that every document the load submitted reached "awaiting review", and that no
process the bench started outlives it. Figures themselves are never asserted (they are the bench's
to print). Under scripts/with-postgres the bench runs on a fresh database in that cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]


def test_a_tiny_load_run_has_every_figure_and_no_error(tmp_path):
    out = tmp_path / "load.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_URL"))}
    bench = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "load.py"),
            *("--users", "3", "--spawn-rate", "3", "--duration", "5"),
            *("--gunicorn-workers", "2", "--durable-workers", "1", "--drain-timeout", "30"),
            *("--json-out", str(out)),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its group holds redis-server and gunicorn too
    )
    try:
        stdout, stderr = bench.communicate(timeout=105)
    finally:
        if bench.poll() is None:  # out of time: the whole group goes (the durable workers follow their parent)
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait(10)
    done = subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["database"] == (
        "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    )
    for name in ("submit", "status"):
        row = figures[name]
        assert row["requests"] > 0, name
        assert row["errors"] == 0, (name, figures["failures"])
        for figure in ("rps", "p50_ms", "p95_ms", "p99_ms"):
            assert isinstance(row[figure], float), (name, figure, row)
            assert row[figure] > 0, (name, figure, row)
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert figures["errors"] == 0
    assert figures["failures"] == []
    assert figures["server_tracebacks"] == 0
    waited = figures["submit_to_review"]
    assert waited["drained"] is True
    assert waited["documents"] >= figures["submit"]["requests"] > 0
    assert waited["reached"] == waited["documents"]  # every submitted document awaits review
    assert 0 < waited["p50_ms"] <= waited["p95_ms"] <= waited["max_ms"]
    assert figures["document_statuses"] == {"awaiting_review": waited["documents"]}
    # The table and the JSON on stdout.
    assert "submit -> awaiting review" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1])["submit"] == figures["submit"]
    # Redis, gunicorn (master and workers), the durable workers: all gone.
    assert len(figures["pids"]) >= 5
    alive = [pid for pid in figures["pids"] if Path(f"/proc/{pid}").exists()]
    assert alive == [], alive
