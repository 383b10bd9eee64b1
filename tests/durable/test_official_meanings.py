"""The official names added for porting mean what they mean there: the same inputs through the
official object and through ours give the same outputs (codecs, invocation envelopes, service
error classes, operation ids and identities, ARNs, the replay-aware logger)."""

import dataclasses
import datetime
import decimal
import json
import uuid

import aws_durable_execution_sdk_python.exceptions as their_exceptions
import aws_durable_execution_sdk_python.execution as their_execution
import aws_durable_execution_sdk_python.identifier as their_identifier
import aws_durable_execution_sdk_python.logger as their_logger
import aws_durable_execution_sdk_python.serdes as their_serdes
import aws_durable_execution_sdk_python.types as their_types
import pytest
from aws_durable_execution_sdk_python.lambda_service import Operation as TheirOperation
from aws_durable_execution_sdk_python.lambda_service import OperationStatus as TheirOperationStatus
from aws_durable_execution_sdk_python.lambda_service import OperationType as TheirOperationType

import durable
import durable.exceptions as our_exceptions
import durable.execution as our_execution
import durable.identifier as our_identifier
import durable.logger as our_logger
import durable.serdes as our_serdes
import durable.types as our_types

VALUES = [
    None,
    "text",
    True,
    7,
    2.5,
    b"\x00\xffbytes",
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("10.25"),
    datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC),
    datetime.date(2026, 12, 2),
    [1, "two", (3, 4.5)],
    {"a": [b"x", {"b": decimal.Decimal("1.5")}], "c": None},
]


def plain(node):
    """An encoded value as JSON-ready data (the official codec nests EncodedValue objects)."""
    if dataclasses.is_dataclass(node):
        return {"t": str(node.tag), "v": plain(node.value)}
    if isinstance(node, list):
        return [plain(item) for item in node]
    if isinstance(node, dict):
        return {key: plain(item) for key, item in node.items()}
    return node


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ for v in VALUES])
def test_the_type_codec_encodes_as_the_official_one_and_reads_its_output(value):
    ours, theirs = our_serdes.TYPE_CODEC.encode(value), their_serdes.TYPE_CODEC.encode(value)
    assert json.dumps(plain(ours)) == json.dumps(plain(theirs))
    assert our_serdes.TYPE_CODEC.decode(ours.tag, ours.value) == value
    wire = json.loads(json.dumps(plain(theirs)))
    assert our_serdes.TYPE_CODEC.decode(our_serdes.TypeTag(wire["t"]), wire["v"]) == value


def test_the_codecs_refuse_what_they_cannot_encode():
    with pytest.raises(durable.SerDesError, match="unsupported type"):
        our_serdes.TYPE_CODEC.encode(object())
    with pytest.raises(durable.SerDesError, match="tuple keys"):
        our_serdes.TYPE_CODEC.encode({(1, 2): "x"})
    with pytest.raises(durable.SerDesError, match="expected a list"):
        our_serdes.TYPE_CODEC.decode(our_serdes.TypeTag.LIST, "not a list")
    assert our_serdes.DEFAULT_JSON_SERDES.serialize({"a": 1}, None) == '{"a": 1}'
    assert our_serdes.EXTENDED_TYPES_SERDES is our_serdes.DEFAULT_SERDES


def test_the_invocation_envelope_reads_and_writes_the_service_shape():
    envelope = {
        "DurableExecutionArn": "exec-1",
        "CheckpointToken": "token-1",
        "InitialExecutionState": {"Operations": [], "NextMarker": "m"},
        "UpdatedOperationIds": ["op"],
    }
    ours = our_execution.DurableExecutionInvocationInput.from_dict(envelope)
    theirs = their_execution.DurableExecutionInvocationInput.from_dict(envelope)
    assert ours.to_dict() == theirs.to_dict() == envelope
    client = object()
    with_client = our_execution.DurableExecutionInvocationInputWithClient.from_durable_execution_invocation_input(
        ours, client
    )
    assert (with_client.service_client, with_client.checkpoint_token) == (client, "token-1")
    with pytest.raises(KeyError):
        our_execution.DurableExecutionInvocationInput.from_dict({"CheckpointToken": "t"})
    assert our_execution.LAMBDA_RESPONSE_SIZE_LIMIT == their_execution.LAMBDA_RESPONSE_SIZE_LIMIT


CLASSIFICATION_CASES = [
    ({"Code": "ThrottlingException", "Message": "slow down"}, 429),
    ({"Code": "InvalidParameterValueException", "Message": "Invalid checkpoint token: stale"}, 400),
    ({"Code": "InvalidParameterValueException", "Message": "bad field"}, 400),
    ({"Code": "ServiceException", "Message": "oops"}, 500),
    (None, 400),
    (None, None),
]


@pytest.mark.parametrize(("error", "status"), CLASSIFICATION_CASES)
def test_service_call_errors_are_classed_as_the_official_ones(error, status):
    metadata = {"HTTPStatusCode": status} if status else None
    theirs = their_exceptions.BotoClientError._classify_error_category(error, metadata)
    ours = our_exceptions.BotoClientError.classify(error, metadata)
    assert ours.value == theirs.value
    error_object = our_exceptions.CheckpointError("failed", ours, error, metadata)
    assert error_object.is_retryable() is (ours.value == "INVOCATION")
    if error_object.is_retryable():
        with pytest.raises(our_exceptions.CheckpointError):
            our_execution.handle_checkpoint_error(error_object)
    else:
        output = our_execution.handle_checkpoint_error(error_object)
        assert (output.status.value, output.error.type, output.error.message) == ("FAILED", "CheckpointError", "failed")


def test_recorded_operation_errors_replay_as_their_class():
    rebuilt = our_exceptions.DurableOperationError.from_error_fields("StepError", "boom", None, None)
    assert type(rebuilt) is our_exceptions.StepError
    assert type(our_exceptions.DurableOperationError.from_error_fields("Custom", "x", None, None)) is (
        our_exceptions.DurableOperationError
    )

    class QuotaError(our_exceptions.DurableOperationError):
        pass

    our_exceptions.register_operation_error(QuotaError)
    assert type(our_exceptions.DurableOperationError.from_error_fields("QuotaError", "x", None, None)) is QuotaError


def test_operation_ids_and_identities_are_the_official_ones():
    for prefix in (None, "parent"):
        ours, theirs = our_identifier.OperationIdNamespace(prefix), their_identifier.OperationIdNamespace(prefix)
        assert [ours.create_id_for_step(n) for n in (1, 2, 10)] == [theirs.create_id_for_step(n) for n in (1, 2, 10)]
    identity = our_identifier.OperationIdentifier("op", "Step", "parent", "charge", operation_type="STEP")
    same = TheirOperation(
        operation_id="op",
        operation_type=TheirOperationType.STEP,
        status=TheirOperationStatus.SUCCEEDED,
        sub_type="Step",
        name="charge",
        parent_id="parent",
    )
    identity.validate_checkpoint(same)
    identity.validate_checkpoint(None)
    other = dataclasses.replace(same, name="refund")
    with pytest.raises(durable.NonDeterministicExecutionError, match="name checkpoint='refund' current='charge'"):
        identity.validate_checkpoint(other)
    their_identity = their_identifier.OperationIdentifier(
        "op", "Step", "parent", "charge", operation_type=TheirOperationType.STEP
    )
    with pytest.raises(Exception, match="name checkpoint='refund' current='charge'"):
        their_identity.validate_checkpoint(other)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:lambda:us-west-2:123456789012:function:orders:$LATEST/durable-execution/run-1/inv-9",
        "arn:aws:lambda:us-west-2:123456789012:function:orders",
        "5b2f0a8e-0000-4000-8000-000000000000",
    ],
)
def test_execution_arns_parse_as_the_official_ones(arn):
    ours, theirs = our_types.DurableExecutionArn.from_arn(arn), their_types.DurableExecutionArn.from_arn(arn)
    assert (dataclasses.astuple(ours) if ours else None) == (dataclasses.astuple(theirs) if theirs else None)


class Recorder:
    """A logger of the user's choosing (not a logging.Logger): records each call."""

    def __init__(self):
        self.lines = []

    def _record(self, level):
        return lambda msg, *args, extra=None: self.lines.append((level, msg % args if args else msg, extra))

    def __getattr__(self, level):
        return self._record(level)


def test_the_replay_aware_logger_behaves_as_the_official_one():
    state = type("State", (), {"execution_id": "exec-1", "durable_execution_arn": "exec-1"})()
    replaying = [True]
    logs = {}
    for label, module in (("ours", our_logger), ("theirs", their_logger)):
        recorder = Recorder()
        info = module.LogInfo(state, parent_id="p", operation_id="o", name="charge", attempt=2)
        log = module.Logger.from_log_info(recorder, info, lambda: replaying[0])
        log.info("skipped while replaying")
        replaying[0] = False
        log.info("hello %s", "world", extra={"k": 1})
        log.with_is_replaying(lambda: True).error("never")
        log.with_log_info(info.with_parent_id("q")).warning("moved")
        assert log.get_logger() is recorder
        logs[label] = recorder.lines
        replaying[0] = True
    assert logs["ours"] == logs["theirs"]
    assert logs["ours"][0] == (
        "info",
        "hello world",
        {
            "executionArn": "exec-1",
            "parentId": "p",
            "operationName": "charge",
            "attempt": 2,
            "operationId": "o",
            "k": 1,
        },
    )


def test_durable_context_metadata_and_decorators_exist_with_their_shapes():
    context = durable.ExecutionContext(durable_execution_arn="exec-1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.durable_execution_arn = "other"  # type: ignore[misc]

    @durable.durable_wait_for_callback
    def submit(callback_id, ctx, ticket):
        return (callback_id, ticket)

    bound = submit("T-1")
    assert bound("cb", None) == ("cb", "T-1")
    assert bound._original_name == "submit"
