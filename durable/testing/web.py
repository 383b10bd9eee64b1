"""`WebRunner`: the durable service's HTTP API on a local port, for tests written in any language.

The official `WebRunner` serves the service's API (start an execution, read it and its history,
stop it, complete callbacks) so that code outside the Python process can test against it. Ours
serves the same routes and bodies over the engine's client; executions started through it are run
by the project's workers (the configured dispatcher), as everything else is. Requests are served
in threads, each with its own database connection, closed after the request.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from django.db import close_old_connections, connections

from durable import client, exceptions
from durable.models import Execution

API = "2025-12-01"


@dataclass(frozen=True)
class WebServiceConfig:
    """Where the API listens (port 0: any free port) and the largest body it reads."""

    host: str = "localhost"
    port: int = 5000
    log_level: int = logging.INFO
    max_request_size: int = 10 * 1024 * 1024


@dataclass(frozen=True)
class WebRunnerConfig:
    """The official configuration. Only `web_service` matters here; the rest (the Lambda endpoint,
    region, store, timeouts, skipping time) is the deployment's own settings."""

    web_service: WebServiceConfig = field(default_factory=WebServiceConfig)
    lambda_endpoint: str = "http://127.0.0.1:3001"
    local_runner_endpoint: str = "http://0.0.0.0:5000"
    local_runner_region: str = "us-west-2"
    local_runner_mode: str = "local"
    store_type: str = "memory"
    store_path: str | None = None
    invocation_timeout_seconds: int = 900
    skip_time: bool = False
    max_invocation_page_bytes: int | None = None
    function_configs: Any = None


# The service's error name and HTTP status for each of the engine's errors.
_ERRORS: list[tuple[type[Exception], str, int]] = [
    (exceptions.ExecutionNotFoundError, "ResourceNotFoundException", 404),
    (exceptions.CallbackNotFoundError, "ResourceNotFoundException", 404),
    (exceptions.UnknownFunctionError, "ResourceNotFoundException", 404),
    (exceptions.ExecutionAlreadyExistsError, "ExecutionAlreadyStartedException", 409),
    (exceptions.ExecutionNotRunningError, "InvalidParameterValueException", 400),
    (exceptions.CallbackAlreadyCompletedError, "InvalidParameterValueException", 400),
    (exceptions.CallbackExpiredError, "CallbackTimeoutException", 400),
    (exceptions.ValidationError, "InvalidParameterValueException", 400),
    (ValueError, "InvalidParameterValueException", 400),
]


def _execution(execution: Execution) -> dict[str, Any]:
    body: dict[str, Any] = {
        "DurableExecutionArn": str(execution.pk),
        "DurableExecutionName": execution.execution_name,
        "FunctionArn": execution.function_name,
        "Status": execution.status,
        "StartTimestamp": execution.created_at.isoformat(),
        "InputPayload": execution.input,
    }
    if execution.ended_at is not None:
        body["EndTimestamp"] = execution.ended_at.isoformat()
    if execution.result is not None:
        body["Result"] = execution.result
    if execution.error:
        body["Error"] = execution.error
    return body


def _start(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if not body.get("FunctionName"):
        raise exceptions.ValidationError("Missing required field: FunctionName")
    raw = body.get("Input")
    execution = client.start_execution(
        body["FunctionName"],
        json.loads(raw) if isinstance(raw, str) and raw.strip() else {},
        execution_name=body.get("ExecutionName"),
        execution_timeout=body.get("ExecutionTimeoutSeconds"),
    )
    return 201, {"ExecutionArn": str(execution.pk)}


def _route(method: str, parts: list[str], body: bytes) -> tuple[int, dict[str, Any]]:
    """The response (status, JSON body) to one request. Raises the engine's errors."""

    def document() -> dict[str, Any]:
        return json.loads(body) if body.strip() else {}

    match method, parts:
        case "GET", ["health"]:
            return 200, {"status": "healthy"}
        case "POST", ["start-durable-execution"]:
            return _start(document())
        case "GET", [api, "durable-executions", arn] if api == API:
            return 200, _execution(client.get_execution(arn))
        case "GET", [api, "durable-executions", arn, "history"] if api == API:
            return 200, client.get_history(arn, include_execution_data=True)
        case "POST", [api, "durable-executions", arn, "stop"] if api == API:
            error = document().get("Error")
            stopped = client.stop_execution(arn, error=error)
            return 200, {"StopTimestamp": (stopped.ended_at or stopped.updated_at).isoformat()}
        case "POST", [api, "durable-execution-callbacks", callback_id, "succeed"] if api == API:
            client.send_callback_success(callback_id, body or None)
            return 200, {}
        case "POST", [api, "durable-execution-callbacks", callback_id, "fail"] if api == API:
            client.send_callback_failure(callback_id, document().get("Error") or document() or None)
            return 200, {}
        case "POST", [api, "durable-execution-callbacks", callback_id, "heartbeat"] if api == API:
            client.send_callback_heartbeat(callback_id)
            return 200, {}
    return 404, {"Type": "UnknownOperationException", "message": f"no route for {method} /{'/'.join(parts)}"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.config.max_request_size:
            self._reply(413, {"Type": "RequestEntityTooLargeException", "message": "the body is too large"})
            return
        body = self.rfile.read(length) if length else b""
        parts = [part for part in self.path.split("?", 1)[0].split("/") if part]
        close_old_connections()
        try:
            status, document = _route(self.command, parts, body)
        except json.JSONDecodeError as exc:
            status, document = 400, {"Type": "InvalidParameterValueException", "message": f"not JSON: {exc}"}
        except Exception as exc:  # noqa: BLE001 - every error becomes the service's error response
            name, status = next(((n, s) for kind, n, s in _ERRORS if isinstance(exc, kind)), ("ServiceException", 500))
            document = {"Type": name, "message": str(exc)}
        finally:
            connections.close_all()  # this thread's connections: a thread per request
        self._reply(status, document)

    def _reply(self, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _serve  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        logging.getLogger("durable.testing.web").log(self.server.config.log_level, format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: WebServiceConfig, handler: Callable[..., BaseHTTPRequestHandler]) -> None:
        self.config = config
        super().__init__((config.host, config.port), handler)


class WebRunner:
    """Serves the API while started (`start()`/`stop()`, or as a context manager)."""

    def __init__(self, config: WebRunnerConfig) -> None:
        self._config = config
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, for port 0). Raises RuntimeError if stopped."""
        if self._server is None:
            raise RuntimeError("the web runner is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Listen and serve in a background thread. Raises RuntimeError if already started."""
        if self._server is not None:
            raise RuntimeError("the web runner is already started")
        self._server = _Server(self._config.web_service, _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="durable-web-runner", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Start if needed and block until stopped (by another thread, or Ctrl-C)."""
        if self._server is None:
            self.start()
        if self._thread is not None:
            try:
                self._thread.join()
            except KeyboardInterrupt:
                self.stop()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None
