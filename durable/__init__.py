"""Durable execution for Django: checkpoint-and-replay handlers with the official SDK's API.

Only the replay core is imported here, so `import durable` works before Django is set up.
"""

from durable.batch_config import (
    BatchItemStatus,
    CompletionConfig,
    CompletionDecision,
    CompletionItemStatus,
    CompletionOutcome,
    CompletionStatus,
    MapConfig,
    NestingType,
    ParallelBranch,
    ParallelConfig,
    complete_batch,
    continue_batch,
)
from durable.concurrency.models import BatchCompletionError, BatchItem, BatchResult, CompletionReason
from durable.config import (
    CallbackConfig,
    ChildConfig,
    Duration,
    JitterStrategy,
    StepConfig,
    StepSemantics,
    WaitForCallbackConfig,
)
from durable.context import DurableContext, durable_parallel_branch, durable_step, durable_with_child_context
from durable.exceptions import (
    CallbackError,
    CallbackExternalError,
    CallbackSubmitterError,
    CallbackTimeoutError,
    ChildContextError,
    DurableExecutionsError,
    ExecutionError,
    InvocationError,
    NonDeterministicExecutionError,
    SerDesError,
    StepError,
    ValidationError,
)
from durable.execution import durable_execution
from durable.retries import RetryDecision, RetryPresets, RetryStrategyConfig, create_retry_strategy
from durable.types import StepContext, WaitForCallbackContext

__all__ = [
    "BatchCompletionError",
    "BatchItem",
    "BatchItemStatus",
    "BatchResult",
    "CallbackConfig",
    "CallbackError",
    "CallbackExternalError",
    "CallbackSubmitterError",
    "CallbackTimeoutError",
    "ChildConfig",
    "ChildContextError",
    "CompletionConfig",
    "CompletionDecision",
    "CompletionItemStatus",
    "CompletionOutcome",
    "CompletionReason",
    "CompletionStatus",
    "DurableContext",
    "DurableExecutionsError",
    "Duration",
    "ExecutionError",
    "InvocationError",
    "JitterStrategy",
    "MapConfig",
    "NestingType",
    "NonDeterministicExecutionError",
    "ParallelBranch",
    "ParallelConfig",
    "RetryDecision",
    "RetryPresets",
    "RetryStrategyConfig",
    "SerDesError",
    "StepConfig",
    "StepContext",
    "StepError",
    "StepSemantics",
    "ValidationError",
    "WaitForCallbackConfig",
    "WaitForCallbackContext",
    "complete_batch",
    "continue_batch",
    "create_retry_strategy",
    "durable_execution",
    "durable_parallel_branch",
    "durable_step",
    "durable_with_child_context",
]
