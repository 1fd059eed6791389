"""OTLP export from Python: an application process configured only by the
standard ``OTEL_EXPORTER_OTLP_*`` variables makes a chat call with the real
openai client (against the loopback upstream), and its span and GenAI
metrics arrive at a real OTLP/HTTP receiver on 127.0.0.1, decoded with
opentelemetry-proto.

The application is a child process: the pipeline reads its configuration
from the environment once, and this test session's points at the AnoSys
stand-in. The child exits without flushing: interpreter exit delivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import metadata

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2
from servers import OtlpReceiver

APP = """
import json, sys
import openai
from anosys import AnosysOpenAILogger

AnosysOpenAILogger()
client = openai.OpenAI(api_key="sk-test-not-a-real-key", base_url=sys.argv[1], max_retries=0)
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}])
print(json.dumps({"id": reply.id, "model": reply.model, "input": reply.usage.prompt_tokens,
                  "output": reply.usage.completion_tokens}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, upstream):
    """Runs the application once; the receiver and the reply it printed."""
    receiver = OtlpReceiver()
    work = tmp_path_factory.mktemp("otlp-app")
    script = work / "otlp_app.py"
    script.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANOSYS_", "OTEL_"))}
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=t%201",
        "ANOSYS_DB": str(work / "outbox.db"),
    })
    done = subprocess.run([sys.executable, str(script), upstream.url + "/v1"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    # Both exports are made before the child exits; allow the server's
    # threads a moment to store the last request.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (receiver.spans() and "gen_ai.client.token.usage" in receiver.metrics()):
        time.sleep(0.02)
    yield receiver, reply
    receiver.close()


def test_the_chat_call_arrives_as_an_otlp_span(exported):
    receiver, reply = exported
    spans = receiver.spans()
    assert len(spans) == 1, spans
    resource, scope, span = spans[0]
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == trace_pb2.Span.SPAN_KIND_CLIENT
    assert span.status.code != trace_pb2.Status.STATUS_CODE_ERROR
    assert len(span.trace_id) == 16 and len(span.span_id) == 8 and not span.parent_span_id
    assert 0 < span.start_time_unix_nano <= span.end_time_unix_nano
    attrs = {kv.key: kv.value for kv in span.attributes}
    value = lambda key: getattr(attrs[key], attrs[key].WhichOneof("value"))  # noqa: E731
    assert value("gen_ai.operation.name") == "chat"
    assert value("gen_ai.provider.name") == "openai"
    assert value("gen_ai.request.model") == "gpt-4o-mini"
    assert value("gen_ai.response.model") == reply["model"]
    assert value("gen_ai.response.id") == reply["id"]
    assert value("gen_ai.usage.input_tokens") == reply["input"]
    assert value("gen_ai.usage.output_tokens") == reply["output"]
    assert [v.string_value for v in attrs["gen_ai.response.finish_reasons"].array_value.values] == ["stop"]
    assert value("server.address") == "127.0.0.1"
    messages = json.loads(value("gen_ai.output.messages"))
    assert messages[0]["parts"][0]["content"] == "This is a test."
    assert resource["service.name"] == "otlp_app"
    assert resource["telemetry.sdk.name"] == "anosys"
    assert resource["telemetry.sdk.language"] == "python"
    assert resource["telemetry.sdk.version"] == metadata.version("anosys")
    # OTEL_EXPORTER_OTLP_HEADERS, percent-decoded, on every export.
    for path in ("/v1/traces", "/v1/metrics"):
        for headers, _ in receiver.received(path):
            headers = {k.lower(): v for k, v in headers.items()}
            assert headers["x-tenant"] == "t 1"
            assert headers["content-type"] == "application/x-protobuf"


def test_the_genai_client_metrics_arrive(exported):
    receiver, reply = exported
    metrics = receiver.metrics()
    resource, scope, usage = metrics["gen_ai.client.token.usage"]
    assert resource["service.name"] == "otlp_app"
    assert scope.name == "anosys"
    assert usage.unit == "{token}"
    points = {}
    for p in usage.histogram.data_points:
        attrs = {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in p.attributes}
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.response.model"] == reply["model"]
        points[attrs["gen_ai.token.type"]] = (p.count, p.sum)
    assert points == {"input": (1, reply["input"]), "output": (1, reply["output"])}

    _, _, duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    [point] = duration.histogram.data_points
    attrs = {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in point.attributes}
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["server.address"] == "127.0.0.1"
    assert "error.type" not in attrs
    assert point.count == 1 and 0 < point.sum < 60
    assert list(point.explicit_bounds)[:3] == [0.01, 0.02, 0.04]
