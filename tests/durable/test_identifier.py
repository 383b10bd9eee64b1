from aws_durable_execution_sdk_python.identifier import OperationIdNamespace

from durable.identifier import operation_id


def test_operation_ids_match_the_official_scheme():
    for parent in (None, "", "abc", operation_id(None, 3)):
        namespace = OperationIdNamespace(prefix=parent or None)
        for n in (1, 2, 17, 1000):
            assert operation_id(parent, n) == namespace.create_id_for_step(n)


def test_ids_are_deterministic_and_distinct():
    ids = {operation_id(None, n) for n in range(1, 500)}
    assert len(ids) == 499
    assert operation_id("p", 1) != operation_id(None, 1)
    assert len(operation_id(None, 1)) == 64
