"""Loopback servers the tests run against.

- ``Upstream``: an OpenAI-compatible server replaying recorded OpenAI
  exchanges (the demo server's crates/anosys-cli/src/demo/replies.json,
  extracted from the cassettes in
  crates/anosys/tests/fixtures/openai-cassettes), streamed event by event.
  A few replies the recordings do not contain are OpenAI's documented
  shapes, marked below.
- ``Backend``: a stand-in for the AnoSys ingestion API that keeps every
  POSTed record and decodes its columns back to logical keys through the
  mapping each record carries in ``otel_schema_url``.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

# The demo server's replies, one file for every suite (ANOSYS_TEST_REPLIES:
# where it is when this folder runs from elsewhere).
_REPLIES_PATH = os.environ.get("ANOSYS_TEST_REPLIES") or (
    pathlib.Path(__file__).resolve().parents[2] / "anosys-cli" / "src" / "demo" / "replies.json"
)
REPLIES = json.loads(pathlib.Path(_REPLIES_PATH).read_text())

# Not in the recordings: OpenAI's documented shapes.
IMAGE_REPLY = {
    "created": 1731368700,
    "data": [{"url": "https://example.invalid/cat.png", "revised_prompt": "A small cat, watercolour"}],
    "usage": {"input_tokens": 12, "output_tokens": 4160, "total_tokens": 4172,
              "input_tokens_details": {"text_tokens": 12, "image_tokens": 0}},
}


def _api_error(status: int, code: str, message: str) -> Dict[str, Any]:
    return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                      "param": None, "code": code}}


class _Server:
    def __init__(self, handler: type) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


#: The `lone-surrogate` model's answer: half of the pair of 🎉, then 🎉 whole.
LONE_SURROGATE_TEXT = "lone \ud83c half, then a pair: \U0001f389"


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self.server.owner.seen.append((self.path, body))  # type: ignore[attr-defined]
        model = (body or {}).get("model", "")
        stream = bool((body or {}).get("stream"))
        path = self.path.split("?")[0].rstrip("/")
        if model.startswith("error-"):
            status = int(model.split("-")[1])
            return self._json(status, _api_error(status, f"test_{status}", f"synthetic {status} from the test upstream"))
        if path.endswith("/chat/completions"):
            if model == "this-model-does-not-exist":
                return self._reply("chat_not_found")
            if model == "broken-stream":
                return self._broken_stream()
            if model == "long-stream":
                return self._long_stream()
            if model == "slow-reply":
                time.sleep(0.15)
                return self._reply("chat")
            if model == "lone-surrogate":
                # The chat reply, its answer holding half of a UTF-16 pair
                # (json.dumps writes it as a `\ud83c` escape).
                reply = json.loads(REPLIES["chat"]["body"])
                reply["choices"][0]["message"]["content"] = LONE_SURROGATE_TEXT
                return self._json(200, reply)
            if stream:
                return self._reply("chat_stream_tools" if body.get("tools") else "chat_stream")
            return self._reply("chat_tools" if body.get("tools") else "chat")
        if path.endswith("/embeddings"):
            if model.startswith("non-existent"):
                return self._reply("embeddings_not_found")
            # As OpenAI does: base64 of the floats when asked (openai asks
            # unless told otherwise), a list of numbers otherwise.
            return self._reply("embeddings_base64" if body.get("encoding_format") == "base64" else "embeddings")
        if path.endswith("/responses"):
            if model == "this-model-does-not-exist":
                return self._reply("responses_not_found")
            return self._reply("responses_stream" if stream else "responses")
        if path.endswith("/images/generations"):
            return self._json(200, IMAGE_REPLY)
        return self._json(404, _api_error(404, "unknown_url", f"no route {path}"))

    def _json(self, status: int, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reply(self, role: str) -> None:
        reply = REPLIES[role]
        data = reply["body"].encode()
        status = int(reply["status"])
        if not reply["content_type"].startswith("text/event-stream"):
            self.send_response(status)
            self.send_header("content-type", reply["content_type"])
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._stream([e + b"\n\n" for e in data.split(b"\n\n") if e.strip()])

    def _long_stream(self) -> None:
        """The recorded stream with its content events 300 times over (about
        450 KB)."""
        events = [e + b"\n\n" for e in REPLIES["chat_stream"]["body"].encode().split(b"\n\n") if e.strip()]
        self._stream([events[0], *events[1:-3] * 300, *events[-3:]])

    def _broken_stream(self) -> None:
        first = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "broken-stream",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Par"}, "finish_reason": None}]}
        error = {"error": {"message": "The server had an error while processing your request.", "type": "server_error",
                           "param": None, "code": "server_error"}}
        self._stream([f"data: {json.dumps(first)}\n\n".encode(), f"data: {json.dumps(error)}\n\n".encode()])

    def _stream(self, events: List[bytes]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


class Upstream(_Server):
    def __init__(self) -> None:
        self.seen: List[Any] = []
        super().__init__(_UpstreamHandler)


class Record:
    """One record as the AnoSys backend received it, read by logical key."""

    def __init__(self, body: Dict[str, Any]) -> None:
        self.body = body
        self.mapping: Dict[str, str] = json.loads(body.get("otel_schema_url") or "{}")

    def get(self, key: str, default: Any = None) -> Any:
        column = self.mapping.get(key, key)
        return self.body.get(column, default)

    def json(self, key: str, default: Any = None) -> Any:
        value = self.get(key)
        if value is None:
            return default
        return json.loads(value) if isinstance(value, str) else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(f"{key} (columns: {sorted(self.body)})")
        return value

    def __repr__(self) -> str:
        return f"Record({self.body!r})"


class _BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length)
        owner = self.server.owner  # type: ignore[attr-defined]
        with owner.lock:
            owner.bodies.append(json.loads(data))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


class Backend(_Server):
    def __init__(self) -> None:
        self.bodies: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(_BackendHandler)

    def records(self) -> List[Record]:
        with self.lock:
            return [Record(b) for b in self.bodies]

    def wait_for(self, match: Callable[[Record], bool], count: int = 1, timeout: float = 10.0) -> List[Record]:
        """The records ``match`` accepts, once there are ``count`` of them."""
        import anosys

        deadline = time.monotonic() + timeout
        while True:
            anosys.flush(2.0)
            found = [r for r in self.records() if match(r)]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"expected {count} records, got {found}"
                return found
            time.sleep(0.02)

    def one(self, match: Callable[[Record], bool]) -> Record:
        found = self.wait_for(match)
        assert len(found) == 1, f"expected one record, got {len(found)}: {found}"
        return found[0]


class _OtlpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        kinds = {
            "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
            "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                            metrics_service_pb2.ExportMetricsServiceResponse),
        }
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length)
        owner = self.server.owner  # type: ignore[attr-defined]
        if self.path not in kinds:
            status, reply = 404, b""
        else:
            request_type, response_type = kinds[self.path]
            request = request_type()
            request.ParseFromString(data)
            with owner.lock:
                owner.requests.append((self.path, dict(self.headers.items()), request))
            status, reply = 200, response_type().SerializeToString()
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def otlp_attributes(attributes: Any) -> Dict[str, Any]:
    """OTLP ``KeyValue``s as a dict of plain values (arrays as lists)."""

    def value(v: Any) -> Any:
        kind = v.WhichOneof("value")
        if kind == "array_value":
            return [value(x) for x in v.array_value.values]
        if kind == "kvlist_value":
            return otlp_attributes(v.kvlist_value.values)
        return getattr(v, kind) if kind else None

    return {kv.key: value(kv.value) for kv in attributes}


class OtlpReceiver(_Server):
    """An OTLP/HTTP (protobuf) receiver: keeps every ``POST /v1/traces`` and
    ``POST /v1/metrics`` export request, decoded with opentelemetry-proto,
    with its headers; ``url`` is the base URL (OTEL_EXPORTER_OTLP_ENDPOINT)."""

    def __init__(self) -> None:
        self.requests: List[Any] = []
        self.lock = threading.Lock()
        super().__init__(_OtlpHandler)

    def received(self, path: str) -> List[Any]:
        with self.lock:
            return [(headers, request) for p, headers, request in self.requests if p == path]

    def spans(self) -> List[Any]:
        """(resource attributes, scope, span) of every span received."""
        out = []
        for _, request in self.received("/v1/traces"):
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    out.extend((otlp_attributes(rs.resource.attributes), ss.scope, span) for span in ss.spans)
        return out

    def metrics(self) -> Dict[str, Any]:
        """The latest of each metric received, by name, with its resource's
        attributes (the histograms are cumulative: the latest holds all)."""
        out: Dict[str, Any] = {}
        for _, request in self.received("/v1/metrics"):
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        out[metric.name] = (otlp_attributes(rm.resource.attributes), sm.scope, metric)
        return out
