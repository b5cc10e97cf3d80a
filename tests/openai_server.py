"""A scripted OpenAI HTTP API on loopback, for tests that use the real `openai` client.

The SDK is pointed at it with `base_url=server.url`; nothing in the SDK is patched. Each test
scripts what `/v1/chat/completions` answers (a queue of responses, then a default or a
function of the request), and every request body is recorded so a test can assert on exactly
what left the machine. `/v1/embeddings` answers deterministic vectors (floats or base64, as
the client asks), or what `script_embeddings` queued.

    with OpenAIServer() as server:
        server.script(chat({"reply": "What do you want them to learn?", "sources": []}))
        ...
        assert "jamie@example.org" not in server.sent_text()
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest


@dataclass
class Response:
    """One scripted HTTP answer; `content` (for chat) is wrapped into a completion at send time."""

    status: int = 200
    body: bytes | None = None
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    prompt_tokens: int = 150
    completion_tokens: int = 60
    finish_reason: str = "stop"


def chat(content: str | dict[str, Any], *, delay: float = 0.0, prompt_tokens: int = 150,
         completion_tokens: int = 60, finish_reason: str = "stop") -> Response:
    """A completion whose message content is `content` (a dict is sent as its JSON)."""
    text = json.dumps(content) if isinstance(content, dict) else content
    return Response(content=text, delay=delay, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    finish_reason=finish_reason)


def error(status: int, message: str = "scripted error", *, headers: dict[str, str] | None = None,
          delay: float = 0.0) -> Response:
    """An API error in OpenAI's error shape."""
    body = json.dumps({"error": {"message": message, "type": "server_error", "code": None}}).encode()
    return Response(status=status, body=body, headers=headers or {}, delay=delay)


def raw(body: str | bytes, *, status: int = 200, content_type: str = "application/json") -> Response:
    """Bytes exactly as given (e.g. a malformed JSON body)."""
    data = body.encode() if isinstance(body, str) else body
    return Response(status=status, body=data, headers={"Content-Type": content_type})


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    raw: str
    body: Any  # parsed JSON, or None when it was not JSON

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    def message_text(self) -> str:
        """Every message's content, joined: what the model would read."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)


def fake_vector(text: str, dimension: int) -> list[float]:
    """A deterministic vector for a text; similar texts share words, so share components."""
    vec = np.zeros(dimension, dtype=np.float64)
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,?!:;").encode()).digest()
        vec[int.from_bytes(digest[:4], "little") % dimension] += 1.0
        vec[int.from_bytes(digest[4:8], "little") % dimension] += 0.5
    if not vec.any():
        vec[0] = 1.0
    return (vec / np.linalg.norm(vec)).tolist()


class OpenAIServer:
    """Plays the OpenAI API on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, *, embedding_dimension: int = 64) -> None:
        self.requests: list[Recorded] = []
        self.embedding_dimension = embedding_dimension
        self.default: Response | Callable[[Recorded], Response] | None = None
        self._queue: deque[Response | Callable[[Recorded], Response]] = deque()
        self._embedding_queue: deque[Response] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-loopback", daemon=True)

    # -- scripting -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base_url to give the SDK."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *responses: Response | Callable[[Recorded], Response]) -> None:
        """Answers for the next chat requests, in order; after them, `default` answers."""
        with self._lock:
            self._queue.extend(responses)

    def script_embeddings(self, *responses: Response) -> None:
        """Answers for the next embedding requests, in order (e.g. `error(400)`); after them, vectors again."""
        with self._lock:
            self._embedding_queue.extend(responses)

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    def sent_text(self) -> str:
        """Every request body as sent, decoded (JSON escapes undone), joined."""
        parts = []
        for r in self.requests:
            parts.append(r.raw)
            if r.body is not None:
                parts.append(json.dumps(r.body, ensure_ascii=False))
        return "\n".join(parts)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "OpenAIServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes handlers that are "being slow"
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------------------

    def _next_chat(self, request: Recorded) -> Response:
        with self._lock:
            step = self._queue.popleft() if self._queue else self.default
        if step is None:
            return error(500, "the test scripted no answer for this request")
        return step(request) if callable(step) else step

    def _embeddings(self, request: Recorded) -> Response:
        with self._lock:
            scripted = self._embedding_queue.popleft() if self._embedding_queue else None
        if scripted is not None:
            return scripted
        body = request.body or {}
        inputs = body.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        data = []
        for i, text in enumerate(inputs):
            vector = fake_vector(str(text), self.embedding_dimension)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in inputs)
        payload = {"object": "list", "data": data, "model": body.get("model", "?"),
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return Response(body=json.dumps(payload).encode())

    def _completion(self, request: Recorded, step: Response) -> bytes:
        model = (request.body or {}).get("model", "?")
        payload = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": step.finish_reason,
                         "message": {"role": "assistant", "content": step.content}}],
            "usage": {"prompt_tokens": step.prompt_tokens, "completion_tokens": step.completion_tokens,
                      "total_tokens": step.prompt_tokens + step.completion_tokens},
        }
        return json.dumps(payload).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw_body = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    parsed = json.loads(raw_body) if raw_body else None
                except json.JSONDecodeError:
                    parsed = None
                headers = {k.lower(): v for k, v in self.headers.items()}  # HTTP names are case-insensitive
                recorded = Recorded("POST", self.path, headers, raw_body, parsed)
                with server._lock:
                    server.requests.append(recorded)
                if self.path.endswith("/chat/completions"):
                    step = server._next_chat(recorded)
                    if step.content is not None:
                        step = Response(status=step.status, body=server._completion(recorded, step),
                                        headers=step.headers, delay=step.delay)
                elif self.path.endswith("/embeddings"):
                    step = server._embeddings(recorded)
                else:
                    step = error(404, f"no route {self.path}")
                if step.delay and server._closing.wait(step.delay):
                    return
                body = step.body or b"{}"
                try:
                    self.send_response(step.status)
                    headers = {"Content-Type": "application/json", **step.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        return Handler


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A started loopback OpenAI server, closed after the test."""
    with OpenAIServer() as server:
        yield server
