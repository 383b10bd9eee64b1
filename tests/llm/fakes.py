"""Local stand-ins for the OpenAI and Bedrock HTTP APIs, reached by the real clients through a URL."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass
class Reply:
    """One scripted answer: status, JSON body, extra headers, and a delay before answering."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    """What the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeServer:
    """An HTTP server on 127.0.0.1 (a free port) answering each POST with the next scripted reply."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, *replies: Reply) -> None:
        """Queue replies, answered in order, one per request."""
        self.replies.extend(replies)

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.replies:
                return self.replies.popleft()
        return Reply(500, {"error": {"message": "the fake server has no reply scripted", "type": "server_error"}})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                request = Request(
                    "POST", unquote(self.path), {name.lower(): value for name, value in self.headers.items()}, body
                )
                reply = fake._next(request)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
                pass

        return Handler


def chat_completion(
    content: str | None = "A fake summary.", *, prompt_tokens: int = 120, completion_tokens: int = 9
) -> dict[str, Any]:
    """An OpenAI chat completion response body."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": "fake-model-2026-01-01",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> Reply:
    """An OpenAI error response."""
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


def converse_response(
    text: str = "A fake Bedrock summary.", *, input_tokens: int = 150, output_tokens: int = 11
) -> dict[str, Any]:
    """A Bedrock Converse response body."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": 42},
    }


def bedrock_error(status: int, code: str, message: str) -> Reply:
    """A Bedrock (rest-json) error response: the code travels in a header."""
    return Reply(status, {"message": message}, headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"})
