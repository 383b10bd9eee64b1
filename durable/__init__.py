"""Durable execution for Django: checkpoint-and-replay handlers with the official SDK's API.

Only the replay core is imported here, so `import durable` works before Django is set up.
"""

from durable.config import (
    CallbackConfig,
    ChildConfig,
    Duration,
    JitterStrategy,
    StepConfig,
    StepSemantics,
    WaitForCallbackConfig,
)
from durable.context import (
    DurableContext,
    ExecutionContext,
    durable_step,
    durable_wait_for_callback,
    durable_with_child_context,
)
from durable.exceptions import (
    CallbackError,
    CallbackExternalError,
    CallbackSubmitterError,
    CallbackTimeoutError,
    ChildContextError,
    DurableExecutionsError,
    DurableOperationError,
    ExecutionError,
    InvocationError,
    InvokeError,
    NonDeterministicExecutionError,
    PluginLoadError,
    RetryableSerDesError,
    SerDesError,
    StepError,
    ValidationError,
    WaitForConditionError,
)
from durable.execution import durable_execution
from durable.retries import (
    RetryDecision,
    RetryPresets,
    RetryStrategyConfig,
    WithRetryConfig,
    create_retry_strategy,
    with_retry,
)
from durable.types import StepContext, WaitForCallbackContext

# The distribution's version (pyproject.toml), as the official package offers its own.
__version__ = "0.2.0"

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
    "DurableOperationError",
    "Duration",
    "ExecutionContext",
    "ExecutionError",
    "InvocationError",
    "InvokeError",
    "JitterStrategy",
    "NonDeterministicExecutionError",
    "PluginLoadError",
    "RetryDecision",
    "RetryPresets",
    "RetryStrategyConfig",
    "RetryableSerDesError",
    "SerDesError",
    "StepConfig",
    "StepContext",
    "StepError",
    "StepSemantics",
    "ValidationError",
    "WaitForCallbackConfig",
    "WaitForCallbackContext",
    "WaitForConditionError",
    "WithRetryConfig",
    "__version__",
    "create_retry_strategy",
    "durable_execution",
    "durable_step",
    "durable_wait_for_callback",
    "durable_with_child_context",
    "with_retry",
]
