"""bench/workers.py's account of a timer burst: how fast it came due, how fast it was resumed.

The figures it prints are never asserted (they are the bench's); what is checked here is the
arithmetic that tells queueing (lateness growing along the burst) from a stall."""

import math

from bench.workers import burst_pace


def test_a_burst_resumed_slower_than_it_came_due_shows_lateness_growing_along_it():
    # Due every 1.5 ms, resumed every 2 ms from 1 ms past the first's due time: the queue grows.
    dues = [100.0 + i * 0.0015 for i in range(10)]
    afters = [100.001 + i * 0.002 for i in range(10)]
    shuffled = [5, 2, 9, 0, 7, 1, 8, 3, 6, 4]  # the bench reads them in start order, not due order
    pace = burst_pace([dues[i] for i in shuffled], [afters[i] for i in shuffled])
    assert math.isclose(pace["due_gap_ms"], 1.5, abs_tol=1e-6)
    assert math.isclose(pace["resume_gap_ms"], 2.0, abs_tol=1e-6)
    assert math.isclose(pace["first_late_ms"], 1.0, abs_tol=1e-6)
    assert math.isclose(pace["last_late_ms"], 1.0 + 9 * 0.5, abs_tol=1e-6)


def test_a_single_timer_has_no_gaps_to_tell():
    pace = burst_pace([10.0], [10.002])
    assert math.isnan(pace["due_gap_ms"])
    assert math.isnan(pace["resume_gap_ms"])
    assert math.isclose(pace["first_late_ms"], 2.0, abs_tol=1e-6)
    assert pace["first_late_ms"] == pace["last_late_ms"]
