"""`manage.py durable_purge`: readable output by function, --dry-run deletes nothing, --json,
--function, --batch-size, and what it deleted in the logs."""

import io
import json
import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from durable import clock, durable_execution
from tests.durable.retention_helpers import journal_rows, seed

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.purge.daily", retention_period=1)
def daily(event: dict, context: object) -> None:
    return None


def purge(*args: str) -> str:
    out = io.StringIO()
    call_command("durable_purge", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def journal():
    now = clock.now()
    return {
        "daily": seed("tests.purge.daily", 2, count=3, now=now),
        "default": seed("tests.purge.other", 31, count=2, now=now),
        "young": seed("tests.purge.other", 10, count=1, now=now),
    }


def test_dry_run_prints_what_would_go_by_function_and_deletes_nothing(journal):
    text = purge("--dry-run")
    lines = text.splitlines()
    assert lines[0].startswith("Dry run: Would delete 5 executions (15 operations, 10 history events) in 2 batches")
    assert lines[1].split() == ["FUNCTION", "RETENTION", "(DAYS)", "EXECUTIONS", "OPERATIONS", "EVENTS", "HELD"]
    assert lines[2].split() == ["tests.purge.daily", "1", "3", "9", "6", "0"]
    assert lines[3].split() == ["tests.purge.other", "30", "2", "6", "4", "0"]
    assert journal_rows([pk for ids in journal.values() for pk in ids]) == (6, 18, 12)


def test_purge_deletes_and_logs_what_it_deleted(journal, caplog):
    with caplog.at_level(logging.INFO, logger="durable.retention"):
        text = purge()
    assert text.startswith("Deleted 5 executions (15 operations, 10 history events) in 2 batches, 0 held")
    assert journal_rows(journal["daily"] + journal["default"]) == (0, 0, 0)
    assert journal_rows(journal["young"]) == (1, 3, 2)
    assert any(
        "durable_purge run by" in r.getMessage() and "deleted 5 executions" in r.getMessage() for r in caplog.records
    )
    assert purge().startswith("Deleted 0 executions")


def test_json_function_and_batch_size(journal):
    report = json.loads(purge("--json", "--function", "tests.purge.daily", "--batch-size", "2"))
    assert report["executions"] == 3
    assert report["batches"] == 2
    assert report["functions"] == {
        "tests.purge.daily": {"retention_days": 1, "executions": 3, "operations": 9, "history_events": 6, "held": 0}
    }
    assert (report["dry_run"], report["more"]) == (False, False)
    assert journal_rows(journal["default"]) == (2, 6, 4)
    dry = json.loads(purge("--json", "--dry-run"))
    assert (dry["dry_run"], dry["executions"]) == (True, 2)


@pytest.mark.parametrize("size", ["0", "5001"])
def test_a_batch_size_out_of_range_is_refused(journal, size):
    with pytest.raises(CommandError, match="--batch-size must be 1 to 5000") as raised:
        purge("--batch-size", size)
    assert raised.value.returncode == 2
    assert journal_rows(journal["daily"])[0] == 3
