"""Durable execution for Django: checkpoint-and-replay handlers with the official SDK's API.

Only the replay core is imported here, so `import durable` works before Django is set up.
"""

from durable.config import (
    CallbackConfig,
    ChildConfig,
    Duration,
    InvokeConfig,
    JitterStrategy,
    StepConfig,
    StepSemantics,
    WaitForCallbackConfig,
)
from durable.context import DurableContext, durable_step, durable_with_child_context
from durable.exceptions import (
    CallbackError,
    CallbackExternalError,
    CallbackSubmitterError,
    CallbackTimeoutError,
    ChildContextError,
    DurableExecutionsError,
    ExecutionError,
    InvocationError,
    InvokeError,
    NonDeterministicExecutionError,
    SerDesError,
    StepError,
    ValidationError,
    WaitForConditionError,
)
from durable.execution import durable_execution
from durable.operation.race import RaceConfig, RaceResult
from durable.retries import RetryDecision, RetryPresets, RetryStrategyConfig, create_retry_strategy
from durable.types import StepContext, WaitForCallbackContext, WaitForConditionCheckContext
from durable.waits import WaitForConditionConfig, WaitForConditionDecision, WaitStrategyConfig, create_wait_strategy

__all__ = [
    "CallbackConfig",
    "CallbackError",
    "CallbackExternalError",
    "CallbackSubmitterError",
    "CallbackTimeoutError",
    "ChildConfig",
    "ChildContextError",
    "DurableContext",
    "DurableExecutionsError",
    "Duration",
    "ExecutionError",
    "InvocationError",
    "InvokeConfig",
    "InvokeError",
    "JitterStrategy",
    "NonDeterministicExecutionError",
    "RaceConfig",
    "RaceResult",
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
    "WaitForConditionCheckContext",
    "WaitForConditionConfig",
    "WaitForConditionDecision",
    "WaitForConditionError",
    "WaitStrategyConfig",
    "create_retry_strategy",
    "create_wait_strategy",
    "durable_execution",
    "durable_step",
    "durable_with_child_context",
]
