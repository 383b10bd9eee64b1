"""The journal's own conversions of Python values to the database's, taken on the paths that start
and fence every execution instead of Django's general ones: they must give what Django's give."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from durable.models import Execution, ExecutionStatus
from durable.state import OperationRecord, OperationStatus, OperationType
from durable.store import sql

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 20, 15, 7, 123456, tzinfo=UTC)
VALUES = [
    None,
    "",
    "text with 'quotes' and \\ and é",
    ExecutionStatus.RUNNING,  # a str subclass: Django's path makes it plain text
    0,
    7,
    2**40,
    True,
    NOW,
    NOW.replace(microsecond=0),
    NOW.astimezone(timezone(timedelta(hours=5, minutes=30))),  # aware, not UTC
    uuid.uuid4(),
    {"a": [1, 2]},
    Decimal("3"),
]


def _plain(value):
    """psycopg's JSON wrappers compare by identity: compare what they wrap."""
    return (type(value), value.obj) if hasattr(value, "obj") else value


def _django(field, value):
    try:
        return ("ok", _plain(field.get_db_prep_save(value, connection)))
    except Exception as exc:
        return ("raised", type(exc))


def _ours(field, value):
    try:
        return ("ok", _plain(sql.db_value(field, value)))
    except Exception as exc:
        return ("raised", type(exc))


@pytest.mark.parametrize("field", Execution._meta.concrete_fields, ids=lambda f: f.attname)
def test_db_value_gives_what_djangos_get_db_prep_save_gives(field):
    compared = 0
    for value in VALUES:
        if isinstance(value, dict) and field.get_internal_type() != "JSONField":
            continue  # not a value any code gives such a field
        expected = _django(field, value)
        assert _ours(field, value) == expected, (field.attname, value)
        compared += 1
    assert compared >= len(VALUES) - 1


def test_new_execution_fills_in_what_the_models_constructor_does():
    execution_id = uuid.uuid4()
    started = {"function_name": "f", "execution_name": "n", "label": "a label"}
    values = sql.statements().new_execution(
        execution_id=execution_id, payload="{}", digest="0" * 64, now=NOW, timeout_seconds=30, **started
    )
    model = Execution(
        id=execution_id,
        input="{}",
        input_hash="0" * 64,
        created_at=NOW,
        updated_at=NOW,
        timeout_seconds=30,
        timeout_at=NOW + timedelta(seconds=30),
        wake_at=NOW,
        **started,
    )
    assert values == {f.attname: getattr(model, f.attname) for f in Execution._meta.concrete_fields}
    assert values["status"] == ExecutionStatus.RUNNING
    assert values["invocation_count"] == 0
    with pytest.raises(TypeError, match="no field nonsense"):
        sql.statements().new_execution(
            execution_id=execution_id, payload="{}", digest="", now=NOW, timeout_seconds=30, nonsense=1, **started
        )


def test_a_records_copy_is_equal_and_independent():
    record = OperationRecord(
        "op", OperationType.STEP, "Step", "name", OperationStatus.STARTED, attempt=2, error={"e": 1}, started_at=NOW
    )
    copied = record.copy()
    assert copied == record
    assert copied is not record
    copied.status = OperationStatus.SUCCEEDED
    assert record.status is OperationStatus.STARTED
