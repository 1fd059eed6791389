#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the recorded OpenAI exchanges.

Run from anywhere: python3 fuzz/seed_corpus.py (needs PyYAML). The kept,
minimised corpora are in the repository already; this only adds seeds (run
`cargo fuzz cmin <target> corpus/<target>` afterwards to keep them small)."""
import json, os, pathlib, urllib.parse, yaml

here = pathlib.Path(__file__).resolve().parent
cassettes = here.parent / "crates/anosys/tests/fixtures/openai-cassettes"
TARGETS = ("sse", "extract", "encode", "outbox_row", "proxy_request")
for target in TARGETS:
    (here / "corpus" / target).mkdir(parents=True, exist_ok=True)

# Route specs the proxy_request target may add to its fixed routes.
SPECS = [b"", b"/ollama/v1=http://127.0.0.1:11434/v1", b"/v1=https://api.openai.com/v1/", b"x=http://h:1/p", b"=https://a"]
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def record(i, name, kind, request, response, status):
    """An outbox row: a record as serde_json writes it (see anosys::Record)."""
    row = {
        "kind": kind,
        "name": name,
        "span_kind": ["INTERNAL", "CLIENT", "SERVER", "PRODUCER", "CONSUMER"][i % 5],
        "start_time": "2024-05-01T12:00:00.000000Z",
        "end_time": "2024-05-01T12:00:01.250000Z",
        "trace_id": f"{i + 1:032x}",
        "span_id": f"{i + 1:016x}",
        "trace_flags": 1,
        "status": {"code": "ERROR", "message": "upstream said no"} if status >= 400 else {"code": "OK"},
        "source": "proxy",
        "input": request,
        "output": response,
        "raw": {"request": request, "response": response},
        "attributes": {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": (request or {}).get("model") if isinstance(request, dict) else None,
            "http.response.status_code": status,
            "gen_ai.usage.input_tokens": 12,
            "anosys.ratio": 0.25,
        },
    }
    if i % 3 == 0:
        row["parent_span_id"] = f"{i + 7:016x}"
        row["trace_state"] = "vendor=1"
        row["events"] = [{"name": "gen_ai.content.chunk", "time": "2024-05-01T12:00:00.500000Z", "attributes": {"n": i}}]
        row["links"] = [{"trace_id": f"{i + 9:032x}", "span_id": f"{i + 9:016x}"}]
    if status >= 400:
        row["error"] = {"type": "http_error", "message": f"status {status}", "stack": "at line 1"}
    if i % 4 == 1:
        row["caller"] = {"function": "main", "file": "app.py", "line": 42}
        row["user_context"] = {"user": "u1"}
        row["resource"] = {"service.name": "svc", "telemetry.sdk.language": "python"}
    return json.dumps(row).encode()


for i, path in enumerate(sorted(cassettes.glob("*.yaml"))):
    doc = yaml.safe_load(path.read_text())
    for j, x in enumerate(doc["interactions"]):
        body = x["response"]["body"]["string"].encode()
        request = (x["request"]["body"] or "null").encode()
        name = f"{path.stem}-{j}"
        if body.startswith(b"data:") or body.startswith(b"event:"):
            (here / "corpus/sse" / name).write_bytes(bytes([len(body) // 3 % 256]) + body)
        (here / "corpus/extract" / name).write_bytes(bytes([i % 7, j % 5]) + request + b"\0" + body)
        (here / "corpus/encode" / name).write_bytes(request)
        try:
            req_json = json.loads(request)
        except ValueError:
            req_json = None
        try:
            resp_json = json.loads(body)
        except ValueError:
            resp_json = body.decode(errors="replace")
        status = x["response"]["status"]["code"]
        (here / "corpus/outbox_row" / name).write_bytes(record(i, f"chat {path.stem}", ["llm_call", "function_call", "raw", "span"][i % 4], req_json, resp_json, status))
        uri = urllib.parse.urlsplit(x["request"]["uri"])
        target = uri.path.encode() + (b"?" + uri.query.encode() if uri.query else b"")
        if i % 2:
            target = b"/ollama" + target
        (here / "corpus/proxy_request" / name).write_bytes(
            bytes([i % 8]) + SPECS[i % len(SPECS)] + b"\0" + target + b"\0" + (TRACEPARENT if j % 2 == 0 else b"") + b"\0" + request
        )
