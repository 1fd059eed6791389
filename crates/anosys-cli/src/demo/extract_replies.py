"""Regenerates replies.json, the demo server's answers, from the recorded
OpenAI exchanges in crates/anosys/tests/fixtures/openai-cassettes (see the
NOTICE.md there). Run from this folder: python3 extract_replies.py"""
import json
import pathlib

import yaml

CASSETTES = pathlib.Path(__file__).resolve().parents[3] / "anosys/tests/fixtures/openai-cassettes"
PICKS = {
    "chat": "test_chat_completion_with_content",
    "chat_tools": "test_chat_completion_tool_calls_with_content",
    "chat_stream": "test_chat_completion_streaming",
    "chat_stream_tools": "test_chat_completion_multiple_tools_streaming_with_content",
    "chat_not_found": "test_chat_completion_404",
    "embeddings": "test_embeddings_with_content",
    "embeddings_base64": "test_embeddings_with_encoding_format",
    "embeddings_not_found": "test_embeddings_model_not_found",
    "responses": "test_responses_create_basic",
    "responses_stream": "test_responses_create_streaming",
    "responses_not_found": "test_responses_create_api_error",
}


def header(headers, name):
    for k, v in (headers or {}).items():
        if k.lower() == name:
            return v[0] if isinstance(v, list) else v
    return None


out = {}
for key, name in PICKS.items():
    doc = yaml.safe_load((CASSETTES / f"{name}.yaml").read_text())
    x = doc["interactions"][0]
    body = x["request"]["body"]
    out[key] = {
        "cassette": name,
        "request": json.loads(body) if body else None,
        "status": x["response"]["status"]["code"],
        "content_type": header(x["response"]["headers"], "content-type") or "application/json",
        "body": x["response"]["body"]["string"],
    }
pathlib.Path("replies.json").write_text(json.dumps(out, indent=1) + "\n")
