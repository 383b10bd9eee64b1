"""New work writes as few pages beside very many waiting executions as on an empty database:
execution ids are time-ordered, so every index that leads with one takes new rows at its right
edge (random ids put each new execution on a page of its own in each of them), and no foreign
key keeps an index of its own that another index already leads with (bench/scale_profile.py
gives the pages written per execution, by index)."""

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from durable import DurableContext, clock, durable_execution
from durable.client import start_execution
from durable.identifier import new_execution_id
from durable.models import EventDelivery, Execution, HistoryEvent, Operation, OutboxEvent

pytestmark = pytest.mark.django_db
MODELS = (Execution, Operation, HistoryEvent, OutboxEvent, EventDelivery)


@durable_execution(name="tests.scale_writes.one_step")
def one_step(event: dict, context: DurableContext) -> int:
    return context.step(lambda _: 1, name="one")


def test_execution_ids_are_version_7_and_ordered_by_time():
    at = clock.now()
    earlier, later = new_execution_id(at - timedelta(milliseconds=1)), new_execution_id(at)
    assert earlier.version == later.version == 7
    assert earlier.variant == uuid.RFC_4122
    assert earlier < later
    assert str(earlier) < str(later)
    assert earlier.hex < later.hex
    assert int(later.hex[:12], 16) == int(at.timestamp() * 1000)
    assert len({new_execution_id(at) for _ in range(1000)}) == 1000  # 74 random bits in each


def test_started_executions_take_ids_in_the_order_they_start_and_name_themselves_by_them():
    started = []
    for _ in range(3):
        started.append(start_execution(one_step, {}))
        time.sleep(0.002)
    ids = [e.pk for e in started]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
    assert [e.execution_name for e in started] == [i.hex for i in ids]
    named = start_execution(one_step, {}, execution_name="mine")
    assert named.execution_name == "mine"
    assert named.pk.version == 7


def indexes(model: Any) -> dict[str, list[str]]:
    """The model's table's indexes and unique constraints (not its primary key): name -> columns.
    PostgreSQL's `_like` indexes (another operator class for LIKE on a text column) left out."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {
        name: c["columns"]
        for name, c in found.items()
        if (c["index"] or c["unique"]) and not c["primary_key"] and not name.endswith("_like")
    }


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_no_index_is_a_prefix_of_another_and_every_foreign_key_leads_one(model):
    found = indexes(model)
    for name, columns in found.items():
        longer = [other for other, cols in found.items() if other != name and cols[: len(columns)] == columns]
        unique = connection.introspection.get_constraints(connection.cursor(), model._meta.db_table)[name]["unique"]
        assert unique or not longer, f"{name} {columns} is a prefix of {longer}: every write maintains both"
    for field in model._meta.concrete_fields:
        if field.is_relation:
            assert any(cols[0] == field.column for cols in found.values()), (field.column, found)


def plan(queryset: Any) -> str:
    """The query's plan; on PostgreSQL with sequential scans priced out, so that an index that
    can serve it is used however small the table (without one, the plan stays a Seq Scan)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
        try:
            return queryset.explain()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET enable_seqscan")
    return queryset.explain()


@pytest.mark.parametrize(
    ("query", "column"),
    [
        (lambda pk: Operation.objects.filter(execution_id=pk).order_by("id"), "execution_id"),
        (lambda pk: HistoryEvent.objects.filter(execution_id=pk).order_by("id"), "execution_id"),
        (lambda pk: Execution.objects.filter(parent_execution_id=pk), "parent_execution_id"),
        (lambda pk: EventDelivery.objects.filter(event_id=pk), "event_id"),
    ],
    ids=["journal", "history", "children", "deliveries"],
)
def test_the_reads_by_a_foreign_key_use_the_index_that_leads_with_it(query, column):
    text = plan(query(new_execution_id()))
    if connection.vendor == "sqlite":
        assert "SEARCH" in text, text
        assert f"({column}=?)" in text, text
        assert "SCAN" not in text, text
    else:
        assert "Seq Scan" not in text, text
        assert "Index" in text, text
