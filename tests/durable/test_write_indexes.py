"""An operation's invoked child is indexed only where there is one (a partial index: a step's row
is not written into it, a page less per commit), and the lookups by it, by a callback id and by
the other keys of a family of executions still read an index, on both databases. (The foreign
keys' own indexes that another index made redundant: tests/durable/test_scale_writes.py.)"""

import uuid

import pytest
from django.db import connection

from durable import clock
from durable.models import EventDelivery, Execution, HistoryEvent, Operation, OutboxEvent

pytestmark = pytest.mark.django_db


def constraints(table: str) -> dict:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


def family(children: int = 30, operations: int = 40) -> tuple[Execution, list[Execution]]:
    """An execution with many operations (one a callback, one an invoke), history, an outbox
    event, and child executions; plus unrelated rows, so a scan would show in the plans."""
    now = clock.now()

    def execution(name: str, parent: Execution | None = None) -> Execution:
        return Execution.objects.create(
            function_name="tests.indexes",
            execution_name=name,
            input="{}",
            input_hash="0" * 64,
            status="RUNNING",
            created_at=now,
            updated_at=now,
            timeout_seconds=3600,
            timeout_at=now,
            parent_execution=parent,
            parent_operation_id=uuid.uuid4().hex if parent else None,
        )

    parent = execution("parent")
    kids = [execution(f"child-{n}", parent) for n in range(children)]
    others = Execution.objects.bulk_create(
        [
            Execution(
                function_name="tests.indexes",
                execution_name=f"other-{n}",
                input="{}",
                input_hash="0" * 64,
                status="RUNNING",
                created_at=now,
                updated_at=now,
                timeout_seconds=3600,
                timeout_at=now,
            )
            for n in range(3000)
        ]
    )[:200]
    rows = []
    for owner in [parent, *others]:
        for n in range(operations):
            rows.append(
                Operation(
                    execution=owner,
                    operation_id=f"{owner.pk.hex[:8]}{n:056x}",
                    type="STEP",
                    sub_type="Step",
                    status="SUCCEEDED",
                    callback_id=uuid.uuid4().hex if n == 1 else None,
                    child_execution=kids[0] if owner is parent and n == 2 else None,
                )
            )
    Operation.objects.bulk_create(rows, batch_size=500)
    HistoryEvent.objects.bulk_create(
        [HistoryEvent(execution=e, event_type="StepSucceeded", timestamp=now) for e in [parent, *others] for _ in "ab"]
    )
    event = OutboxEvent.objects.create(
        id=uuid.uuid4(),
        execution_id=parent.pk,
        detail_type="x",
        function_name="f",
        execution_name="n",
        status="RUNNING",
        detail={},
        created_at=now,
    )
    EventDelivery.objects.create(event=event, sink="signal")
    more = OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                id=uuid.uuid4(),
                execution_id=other.pk,
                detail_type="x",
                function_name="f",
                execution_name="n",
                status="RUNNING",
                detail={},
                created_at=now,
            )
            for other in others
        ]
    )
    EventDelivery.objects.bulk_create([EventDelivery(event=e, sink=sink) for e in more for sink in ("signal", "hook")])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return parent, kids


def assert_index_read(queryset, *indexes: str) -> None:
    """The lookup can read one of `indexes`. On PostgreSQL, with sequential scans priced out: on a
    table of a few pages its planner may prefer one whatever the indexes (make test once got a
    Seq Scan of the history's 400 rows, cost 10.03), and the question is whether an index serves
    the lookup, which a scan still shows when none does."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
        try:
            plan = queryset.explain()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET enable_seqscan")
    else:
        plan = queryset.explain()
    assert any(index in plan for index in indexes), plan
    if connection.vendor == "sqlite":
        assert "SCAN " not in plan.replace("SCAN CONSTANT ROW", ""), plan
    else:
        assert "Seq Scan" not in plan, plan


def test_the_invoked_child_index_is_partial():
    (found,) = [c for name, c in constraints("durable_operation").items() if name == "durable_op_child"]
    assert found["columns"] == ["child_execution_id"]
    found_all = constraints("durable_operation").items()
    others = [name for name, c in found_all if c["index"] and c["columns"] == ["child_execution_id"]]
    assert others == ["durable_op_child"]  # the foreign key's own full index is gone
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            sql = cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'durable_op_child'").fetchone()[0]
        else:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'durable_op_child'")
            sql = cursor.fetchone()[0]
    assert "WHERE" in sql.upper(), sql
    assert "NOT NULL" in sql.upper(), sql


def test_every_lookup_by_a_foreign_key_or_a_callback_id_reads_an_index():
    parent, kids = family()
    callback = Operation.objects.filter(execution=parent, callback_id__isnull=False).values_list("callback_id")[0][0]
    assert_index_read(Operation.objects.filter(callback_id=callback), "callback_id", "durable_operation_")
    assert_index_read(Operation.objects.filter(child_execution=kids[0]), "durable_op_child")
    assert_index_read(Operation.objects.filter(execution=parent), "durable_op")  # unique or journal
    assert_index_read(HistoryEvent.objects.filter(execution=parent), "durable_history_order")
    # (SQLite names a unique constraint's index itself.)
    by_parent = Execution.objects.filter(parent_execution=parent)
    assert_index_read(by_parent, "durable_execution_invoke_unique", "USING INDEX sqlite_autoindex_durable_execution")
    event_id = OutboxEvent.objects.get(execution_id=parent.pk).pk
    by_event = EventDelivery.objects.filter(event_id=event_id)
    assert_index_read(by_event, "durable_delivery_unique", "USING INDEX sqlite_autoindex_durable_eventdelivery")
    assert Operation.objects.get(callback_id=callback).execution_id == parent.pk
    assert Operation.objects.filter(child_execution=kids[0]).count() == 1
    assert Execution.objects.filter(parent_execution=parent).count() == len(kids)


def test_deleting_an_execution_still_takes_its_rows_and_frees_its_children():
    parent, kids = family(children=3, operations=5)
    parent.delete()
    assert not Operation.objects.filter(execution_id=parent.pk).exists()
    assert not HistoryEvent.objects.filter(execution_id=parent.pk).exists()
    assert set(Execution.objects.filter(pk__in=[k.pk for k in kids]).values_list("parent_execution", flat=True)) == {
        None
    }
