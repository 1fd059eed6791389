"""``anosys.otel.AnosysSpanExporter``: OpenTelemetry spans (the user's
own, and the OpenTelemetry OpenAI instrumentation's against the loopback
upstream) arrive at the AnoSys stand-in as records with the right tree."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from anosys import AnosysOpenAILogger, anosys_logger
from anosys.otel import AnosysSpanExporter


@pytest.fixture(scope="module")
def provider():
    p = TracerProvider(resource=Resource.create({"service.name": "otel-test-svc"}))
    p.add_span_processor(SimpleSpanProcessor(AnosysSpanExporter()))
    yield p
    p.shutdown()


def test_the_users_spans_arrive_whole_with_their_tree(backend, provider):
    tracer = provider.get_tracer("checkout", "1.2.3")
    run = uuid.uuid4().hex[:10]
    with tracer.start_as_current_span(f"order {run}", kind=SpanKind.SERVER, attributes={"run": run}) as root:
        with tracer.start_as_current_span(f"charge {run}", attributes={"run": run, "amount": 12.5, "tags": ("a", "b")}) as child:
            child.add_event("card checked", {"ok": True})
            try:
                raise ValueError("card declined")
            except ValueError as exc:
                child.record_exception(exc)
                child.set_status(Status(StatusCode.ERROR, "payment failed"))
    records = backend.wait_for(lambda r: r.get("run") == run, count=2)
    by_name = {r["name"]: r for r in records}
    order, charge = by_name[f"order {run}"], by_name[f"charge {run}"]
    assert order["trace_id"] == format(root.get_span_context().trace_id, "032x")
    assert charge["trace_id"] == order["trace_id"]
    assert charge["parent_id"] == order["span_id"] == format(root.get_span_context().span_id, "016x")
    assert charge["span_id"] == format(child.get_span_context().span_id, "016x")
    assert order["kind"] == "SERVER" and charge["kind"] == "INTERNAL"
    assert order["gen_ai.span.kind"] == "SPAN"
    assert order["source"] == "checkout" and order["otel.scope.version"] == "1.2.3"
    assert charge["amount"] == 12.5
    assert charge["status_code"] == "ERROR"
    assert charge["error_type"] == "ValueError"
    assert charge["error_message"] == "card declined"
    assert "Traceback" in charge["error_stack"]
    assert [e["name"] for e in charge.json("events")] == ["card checked", "exception"]
    assert charge["service.name"] == "otel-test-svc"


def test_the_openai_instrumentations_spans_become_llm_call_records(backend, provider, openai_clients):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    # anosys's own capture too (idempotent): its record of the same call is
    # a child of the instrumentation's span.
    AnosysOpenAILogger()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client, _ = openai_clients
        tracer = provider.get_tracer("app")
        run = uuid.uuid4().hex[:10]
        with tracer.start_as_current_span(f"handle {run}") as outer:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello {run}"}])
    finally:
        instrumentor.uninstrument()
    trace_id = format(outer.get_span_context().trace_id, "032x")
    records = backend.wait_for(lambda r: r.get("trace_id") == trace_id, count=3)
    otel = [r for r in records if r.get("source", "").startswith("opentelemetry.instrumentation.openai")]
    assert len(otel) == 1, records
    span = otel[0]
    assert span["gen_ai.span.kind"] == "LLM"
    assert span["name"].startswith("chat gpt-4o-mini")
    assert span["kind"] == "CLIENT"
    assert span["parent_id"] == format(outer.get_span_context().span_id, "016x")
    assert span["gen_ai.request.model"] == "gpt-4o-mini"
    assert span["gen_ai.usage.input_tokens"] > 0
    ours = [r for r in records if r.get("gen_ai.span.kind") == "LLM" and r is not span]
    assert len(ours) == 1, records
    assert ours[0]["parent_id"] == span["span_id"]
    assert ours[0].json("input")[0]["content"] == f"hello {run}"


def test_context_goes_both_ways_between_otel_spans_and_decorated_functions(backend, provider):
    tracer = provider.get_tracer("app")
    run = uuid.uuid4().hex[:10]

    @anosys_logger(source=f"leaf-{run}")
    def leaf():
        return 1

    @anosys_logger(source=f"work-{run}")
    def work():
        with tracer.start_as_current_span(f"inner {run}", attributes={"run": run}):
            return leaf()

    with tracer.start_as_current_span(f"outer {run}", attributes={"run": run}) as outer:
        assert work() == 1
    spans = {r["name"].split()[0]: r for r in backend.wait_for(lambda r: r.get("run") == run, count=2)}
    work_record = backend.one(lambda r: r.get("source") == f"work-{run}")
    leaf_record = backend.one(lambda r: r.get("source") == f"leaf-{run}")
    trace_id = format(outer.get_span_context().trace_id, "032x")
    assert {spans["outer"]["trace_id"], spans["inner"]["trace_id"], work_record["trace_id"], leaf_record["trace_id"]} == {trace_id}
    # outer (OpenTelemetry) > work (anosys) > inner (OpenTelemetry) > leaf (anosys)
    assert work_record["parent_id"] == spans["outer"]["span_id"]
    assert spans["inner"]["parent_id"] == work_record["span_id"]
    assert leaf_record["parent_id"] == spans["inner"]["span_id"]


def test_an_openai_calls_parent_is_the_current_span_only(backend, provider, openai_clients):
    # With OpenTelemetry installed, a call made outside any span has no
    # parent (the empty context is not looked into further), one made with
    # only baggage in the context has none either, and one made inside a
    # span is its child, in the span's trace.
    from opentelemetry import baggage, context

    AnosysOpenAILogger()
    client, _ = openai_clients
    tracer = provider.get_tracer("app")
    run = uuid.uuid4().hex[:10]

    def ask(what: str) -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{what} {run}"}])

    ask("alone")
    token = context.attach(baggage.set_baggage("tenant", "t-1"))
    try:
        ask("baggage")
    finally:
        context.detach(token)
    with tracer.start_as_current_span(f"handle {run}") as outer:
        ask("inside")
    mine = lambda r: r.get("gen_ai.span.kind") == "LLM" and run in json_text(r.get("input"))  # noqa: E731
    records = {r.json("input")[0]["content"].split()[0]: r for r in backend.wait_for(mine, count=3)}
    assert not records["alone"].get("parent_id")
    assert not records["baggage"].get("parent_id")
    assert records["alone"]["trace_id"] != records["baggage"]["trace_id"]
    assert records["inside"]["parent_id"] == format(outer.get_span_context().span_id, "016x")
    assert records["inside"]["trace_id"] == format(outer.get_span_context().trace_id, "032x")


def json_text(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)
