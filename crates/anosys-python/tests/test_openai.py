"""The real ``openai`` client against the loopback upstream, instrumented by
``AnosysOpenAILogger``; every record is checked at the AnoSys stand-in."""

from __future__ import annotations

import asyncio
import gc
import json

import openai
import pytest

import anosys
from anosys import AnosysOpenAILogger, anosys_logger
from servers import LONE_SURROGATE_TEXT

CURRENT = {"test": None}
LOGGER = AnosysOpenAILogger(get_user_context=lambda: {"test": CURRENT["test"], "user_id": "u-42"})

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}
TOOL_MESSAGES = [
    {"role": "system", "content": "You're a helpful assistant."},
    {"role": "user", "content": "What's the weather in Seattle and San Francisco today?"},
]


@pytest.fixture(autouse=True)
def tag(request):
    CURRENT["test"] = request.node.name
    yield request.node.name
    CURRENT["test"] = None


def mine(name):
    return lambda r: (r.json("user_context") or {}).get("test") == name


def test_sync_chat(tag, backend, openai_clients):
    client, _ = openai_clients
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}], temperature=0.2)
    assert reply.choices[0].message.content == "This is a test."
    r = backend.one(mine(tag))
    assert r["name"] == "chat gpt-4o-mini"
    assert r["gen_ai.operation.name"] == "chat"
    assert r["gen_ai.provider.name"] == "openai"
    assert r["gen_ai.request.model"] == "gpt-4o-mini"
    assert r["gen_ai.request.temperature"] == 0.2
    assert r["gen_ai.response.model"] == reply.model
    assert r["gen_ai.response.id"] == reply.id
    assert r["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert r["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert r.json("gen_ai.response.finish_reasons") == ["stop"]
    assert r["status_code"] == "OK"
    assert r["server.address"] == "127.0.0.1"
    assert r["is_streaming"] is False
    assert r.json("user_context") == {"test": tag, "user_id": "u-42"}
    out = r.json("gen_ai.output.messages")
    assert out[0]["parts"][0]["content"] == "This is a test."
    inp = r.json("gen_ai.input.messages")
    assert inp[0]["role"] == "user"
    resource = r.json("otel_resource")
    assert resource["telemetry.sdk.language"] == "python"
    assert resource["telemetry.sdk.name"] == "anosys"


def test_async_chat_with_tool_calls(tag, backend, openai_clients):
    _, new_async = openai_clients

    async def main():
        return await new_async().chat.completions.create(model="gpt-4o-mini", messages=TOOL_MESSAGES, tools=[WEATHER_TOOL], tool_choice="auto")

    reply = asyncio.run(main())
    calls = reply.choices[0].message.tool_calls
    assert len(calls) == 2
    r = backend.one(mine(tag))
    assert r.json("gen_ai.response.finish_reasons") == ["tool_calls"]
    parts = r.json("gen_ai.output.messages")[0]["parts"]
    tool_parts = [p for p in parts if p["type"] == "tool_call"]
    assert [p["id"] for p in tool_parts] == [c.id for c in calls]
    assert tool_parts[0]["name"] == "get_current_weather"
    assert [t["name"] for t in r.json("gen_ai.tool.definitions")] == ["get_current_weather"]
    assert r["gen_ai.request.tool_choice"] == "auto"


def test_stream_with_tool_calls_and_include_usage(tag, backend, openai_clients):
    client, _ = openai_clients
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=TOOL_MESSAGES, tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)  # the caller still gets openai's own type
    chunks = list(stream)
    usage = [c.usage for c in chunks if c.usage][0]
    args = {}
    for c in chunks:
        for ch in c.choices:
            for tc in ch.delta.tool_calls or []:
                args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
    r = backend.one(mine(tag))
    assert r["is_streaming"] is True
    assert r["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert r["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert r.json("gen_ai.response.finish_reasons") == ["tool_calls"]
    parts = [p for p in r.json("gen_ai.output.messages")[0]["parts"] if p["type"] == "tool_call"]
    assert len(parts) == len(args) == 2
    assert [p["arguments"] for p in parts] == [json.loads(args[i]) for i in sorted(args)]
    assert r["status_code"] == "OK"
    assert r.get("anosys.outcome") in (None, "completed")


def test_async_stream_iteration(tag, backend, openai_clients):
    _, new_async = openai_clients

    async def main():
        stream = await new_async().chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "Say this is a test"}], stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.AsyncStream)
        text = ""
        async for chunk in stream:
            for ch in chunk.choices:
                text += ch.delta.content or ""
        return text

    text = asyncio.run(main())
    assert text
    r = backend.one(mine(tag))
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == text
    assert r.json("gen_ai.response.finish_reasons") == ["stop"]
    assert r["gen_ai.usage.output_tokens"] > 0


def test_stream_as_context_manager_with_early_break(tag, backend, openai_clients):
    client, _ = openai_clients
    with client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Say this is a test"}], stream=True) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = chunk.choices[0].delta.content
                break
    r = backend.one(mine(tag))
    assert r["anosys.outcome"] == "cancelled"
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == first


def test_long_stream_recorded_whole(tag, backend, openai_clients):
    # Its events after the first are held by the call and handed to the
    # engine together: every 64 Ki characters (about 450 KB here) and at
    # the end.
    client, _ = openai_clients
    stream = client.chat.completions.create(model="long-stream", messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == '"This is a test."' * 300
    r = backend.one(mine(tag))
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == text
    assert r["anosys.stream.chunks"] == len(chunks)
    assert r.json("gen_ai.response.finish_reasons") == ["stop"]


def test_stream_dropped_part_read_keeps_what_was_read(tag, backend, openai_clients):
    client, _ = openai_clients
    stream = client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Say this is a test"}], stream=True)
    read = [next(stream) for _ in range(4)]
    del stream
    gc.collect()
    r = backend.one(mine(tag))
    assert r["anosys.outcome"] == "cancelled"
    text = "".join(c.choices[0].delta.content or "" for c in read)
    assert text and r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == text


def test_stream_close_early(tag, backend, openai_clients):
    client, _ = openai_clients
    stream = client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Say this is a test"}], stream=True)
    next(iter(stream))
    stream.close()
    r = backend.one(mine(tag))
    assert r["anosys.outcome"] == "cancelled"


def test_async_stream_early_break(tag, backend, openai_clients):
    _, new_async = openai_clients

    async def main():
        stream = await new_async().chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}], stream=True)
        async for _ in stream:
            break
        await stream.close()

    asyncio.run(main())
    r = backend.one(mine(tag))
    assert r["anosys.outcome"] == "cancelled"


def test_error_mid_stream(tag, backend, openai_clients):
    client, _ = openai_clients
    stream = client.chat.completions.create(model="broken-stream", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    r = backend.one(mine(tag))
    assert r["status_code"] == "ERROR"
    assert r["error_type"] == "server_error"
    assert r["error_message"] == raised.value.message
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == "Par"


@pytest.mark.parametrize("model,status,exc,code", [
    ("this-model-does-not-exist", 404, openai.NotFoundError, "model_not_found"),
    ("error-401", 401, openai.AuthenticationError, "test_401"),
    ("error-429", 429, openai.RateLimitError, "test_429"),
    ("error-500", 500, openai.InternalServerError, "test_500"),
])
def test_api_errors_are_recorded_and_reraised(tag, backend, openai_clients, model, status, exc, code):
    client, _ = openai_clients
    with pytest.raises(exc) as raised:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == status
    r = backend.one(mine(tag))
    assert r["status_code"] == "ERROR"
    assert r["http.response.status_code"] == status
    assert r["error_type"] == code
    assert r["error_message"] == raised.value.body["message"] if isinstance(raised.value.body, dict) else True


def test_the_patched_method_is_transparent(tag, backend, openai_clients):
    """The sync wrapper (a native method, `_native.PatchedMethod`) reads as openai's method,
    passes arguments as they came, and raises the very exception openai
    raised, its traceback through openai's own code."""
    import inspect

    client, _ = openai_clients
    create = type(client.chat.completions).create
    assert create.__name__ == "create"
    assert inspect.signature(create) == inspect.signature(create.__wrapped__)
    bound = inspect.signature(client.chat.completions.create).parameters
    assert "self" not in bound and "model" in bound and "messages" in bound
    assert client.chat.completions.create.__self__ is client.chat.completions
    assert getattr(create, "__anosys_wrapped__", False)
    # Positional arguments that openai refuses reach it as they were given.
    with pytest.raises(TypeError) as refused:
        client.chat.completions.create("gpt-4o-mini")
    assert str(refused.value) == "create() takes 1 argument(s) but 2 were given"  # openai's own check
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="this-model-does-not-exist", messages=[{"role": "user", "content": "hi"}])
    frames = [frame.name for frame in __import__("traceback").extract_tb(raised.value.__traceback__)]
    assert "post" in frames and frames[-1] != "create", frames
    # Both calls are recorded as failed, as every exception out of openai's
    # method is.
    records = {r["error_type"]: r for r in backend.wait_for(mine(tag), count=2)}
    assert set(records) == {"TypeError", "model_not_found"}
    assert records["model_not_found"]["http.response.status_code"] == 404
    assert all(r["status_code"] == "ERROR" for r in records.values())


def test_clients_of_other_base_urls_each_record_their_own(tag, backend, upstream):
    """The patched method keeps the last URL it made, by the client's base
    URL object: clients of other base URLs, called in turn and from several
    threads at once, each record their own."""
    import threading

    port = upstream.url.rsplit(":", 1)[1]
    hosts = {"127.0.0.1": f"http://127.0.0.1:{port}/v1", "localhost": f"http://localhost:{port}/v1/"}
    clients = {host: openai.OpenAI(api_key="sk-test", base_url=url, max_retries=0) for host, url in hosts.items()}
    messages = [{"role": "user", "content": "Say this is a test"}]

    def calls(host, n):
        for i in range(n):
            reply = clients[host].chat.completions.create(model="gpt-4o-mini", messages=messages, user=f"{host}-{i}")
            assert reply.choices[0].message.content == "This is a test."

    threads = [threading.Thread(target=calls, args=(host, 10)) for host in hosts for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = backend.wait_for(mine(tag), count=40)
    assert len(records) == 40
    for r in records:
        # The host the call was made to, by the user field it sent.
        assert r["server.address"] == r.json("raw")["request"]["user"].rsplit("-", 1)[0]
    assert {r["server.address"] for r in records} == set(hosts)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_records_its_calls(tag, backend, openai_clients):
    """The patched method's URL, made in the parent, serves a forked child
    too, whose calls are recorded through its own pipeline."""
    import os

    client, _ = openai_clients
    messages = [{"role": "user", "content": "Say this is a test"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, user="parent")
    anosys.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, user="child")
            code = 0 if anosys.flush(10.0)["delivered"] >= 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    records = backend.wait_for(mine(tag), count=2)
    assert sorted(r.json("raw")["request"]["user"] for r in records) == ["child", "parent"]
    assert all(r["server.address"] == "127.0.0.1" and r["status_code"] == "OK" for r in records)


def test_a_raw_response_is_recorded(tag, backend, openai_clients):
    client, _ = openai_clients
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "This is a test."
    r = backend.one(mine(tag))
    assert r["status_code"] == "OK"
    assert r["gen_ai.response.id"] == reply.id
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == "This is a test."


def test_a_lone_surrogate_in_a_reply_is_recorded_as_the_replacement_character(tag, backend, openai_clients):
    client, _ = openai_clients
    reply = client.chat.completions.create(model="lone-surrogate", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == LONE_SURROGATE_TEXT
    r = backend.one(mine(tag))
    # The answer kept, the lone half as U+FFFD (serde_json refuses its escape).
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == "lone \ufffd half, then a pair: \U0001f389"
    assert r["gen_ai.response.id"] == reply.id


def test_connection_error(tag, backend):
    client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    r = backend.one(mine(tag))
    assert r["status_code"] == "ERROR"
    assert r["error_type"] == "APIConnectionError"


def test_embeddings(tag, backend, openai_clients):
    client, _ = openai_clients
    reply = client.embeddings.create(model="text-embedding-3-small", input="This is a test for embeddings")
    r = backend.one(mine(tag))
    assert r["gen_ai.operation.name"] == "embeddings"
    assert r["name"] == "embeddings text-embedding-3-small"
    assert r["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert r["gen_ai.embeddings.dimension.count"] == len(reply.data[0].embedding)
    # openai asked for base64 (its default) and decoded it: the record,
    # made from the reply as it came, counts the floats in the base64 text.
    assert len(reply.data[0].embedding) == 1536
    assert r.json("raw")["response"]["data"][0]["embedding"] == "[anosys: 1536 floats not kept]"


def test_images_generate(tag, backend, openai_clients):
    client, _ = openai_clients
    reply = client.images.generate(model="gpt-image-1", prompt="a small cat", size="1024x1024")
    assert reply.data[0].url
    r = backend.one(mine(tag))
    assert r["gen_ai.operation.name"] == "generate_content"
    assert r["gen_ai.request.model"] == "gpt-image-1"
    assert r["status_code"] == "OK"


def test_responses_create_and_stream(tag, backend, openai_clients):
    client, new_async = openai_clients
    reply = client.responses.create(model="gpt-4o-mini", input="Say this is a test", instructions="You are a helpful assistant.")

    async def stream():
        s = await new_async().responses.create(model="gpt-4o-mini", input="Say this is a test", stream=True)
        return [e async for e in s]

    events = asyncio.run(stream())
    records = backend.wait_for(mine(tag), count=2)
    plain = [r for r in records if r["is_streaming"] is False][0]
    streamed = [r for r in records if r["is_streaming"] is True][0]
    assert plain["gen_ai.response.id"] == reply.id
    assert plain["gen_ai.usage.output_tokens"] == reply.usage.output_tokens
    assert plain.json("gen_ai.output.messages")[0]["parts"][0]["content"] == reply.output_text
    done = [e for e in events if e.type == "response.completed"][0]
    assert streamed["gen_ai.response.id"] == done.response.id
    assert streamed["gen_ai.usage.output_tokens"] == done.response.usage.output_tokens


def test_responses_api_error(tag, backend, openai_clients):
    client, _ = openai_clients
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="this-model-does-not-exist", input="Hello")
    r = backend.one(mine(tag))
    assert r["error_type"] == "model_not_found"


def test_instrumenting_twice_records_once(tag, backend, openai_clients):
    AnosysOpenAILogger(get_user_context=lambda: {"test": CURRENT["test"], "user_id": "u-42"})
    anosys.instrument_openai(LOGGER.get_user_context)
    client, _ = openai_clients
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}])
    records = backend.wait_for(mine(tag))
    anosys.flush()
    assert len(backend.wait_for(mine(tag))) == 1 == len(records)


def test_calls_inside_a_logged_function_are_its_children(tag, backend, openai_clients):
    client, _ = openai_clients

    @anosys_logger(source="agent")
    def plan():
        return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}]).id

    plan()
    chat = backend.one(mine(tag))
    fn = backend.one(lambda r: r.get("name", "").endswith(".plan") and r["trace_id"] == chat["trace_id"])
    assert chat["parent_id"] == fn["span_id"]
    assert fn["source"] == "agent"


def test_secrets_never_reach_the_backend(tag, backend, openai_clients):
    client, _ = openai_clients
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}])
    r = backend.one(mine(tag))
    assert "sk-test-not-a-real-key" not in json.dumps(r.body)


def test_user_context_errors_do_not_break_calls(backend, openai_clients):
    client, _ = openai_clients

    def broken():
        raise RuntimeError("no session")

    anosys.instrument_openai(broken)
    try:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}])
    finally:
        anosys.instrument_openai(LOGGER.get_user_context)
    r = backend.one(lambda r: "no session" in json.dumps(r.json("user_context") or {}))
    assert r["gen_ai.response.id"] == reply.id


def test_an_interrupt_while_recording_reaches_the_caller(backend, openai_clients):
    """What the package's Python lets through (``except Exception``), the
    native method lets through too: a KeyboardInterrupt raised while the
    call is recorded reaches the caller, sync and async."""
    client, async_client = openai_clients
    messages = [{"role": "user", "content": "Say this is a test"}]

    def interrupted():
        raise KeyboardInterrupt

    anosys.instrument_openai(interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)

        async def call():
            await async_client().chat.completions.create(model="gpt-4o-mini", messages=messages)

        with pytest.raises(KeyboardInterrupt):
            asyncio.run(call())
    finally:
        anosys.instrument_openai(LOGGER.get_user_context)
    # The method works as before afterwards.
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert reply.choices[0].message.content == "This is a test."


def test_set_user_context_goes_with_the_plain_calls_of_its_own_context(backend, openai_clients):
    # Without a get_user_context callable, a plain call stores what
    # set_user_context set in the caller's own context: this thread's, a
    # second thread's, an asyncio task's, and nothing once cleared.
    import threading
    import uuid

    client, aclient = openai_clients
    run = uuid.uuid4().hex[:10]

    def ask(what: str) -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{what} {run}"}])

    def other_thread() -> None:
        anosys.set_user_context({"user_id": "u-thread"})
        ask("thread")

    async def task() -> None:
        anosys.set_user_context({"user_id": "u-task"})
        await aclient().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"task {run}"}])

    anosys.instrument_openai(None)
    try:
        anosys.set_user_context({"user_id": "u-main", "session_id": run})
        ask("main")
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        asyncio.run(task())
        ask("after")  # the thread's and the task's did not leak here
        anosys.clear_user_context()
        ask("cleared")
    finally:
        anosys.clear_user_context()
        anosys.instrument_openai(LOGGER.get_user_context)
    records = backend.wait_for(lambda r: r.get("gen_ai.span.kind") == "LLM" and run in str(r.get("input")), count=5)
    users = {r.json("input")[0]["content"].split()[0]: r.json("user_context") for r in records}
    assert users["main"] == {"user_id": "u-main", "session_id": run}
    assert users["after"] == users["main"]
    assert users["thread"] == {"user_id": "u-thread"}
    assert users["task"] == {"user_id": "u-task"}
    assert not users["cleared"]


def _iso(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_plain_reply_recorded_off_the_callers_thread_as_before(tag, backend, openai_clients):
    # A plain reply is made into its record on the engine's extraction
    # thread from the body openai read: the same record (the raw response
    # is the reply as openai parsed it; times are the caller's), counted at
    # once by counters().
    import time

    client, _ = openai_clients
    before = anosys.counters()["captured"]
    t0 = time.time()
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}])
    t1 = time.time()
    assert anosys.counters()["captured"] >= before + 1
    r = backend.one(mine(tag))
    assert r.json("raw")["response"] == reply.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert r.json("raw")["request"]["model"] == "gpt-4o-mini"
    start, end = _iso(r["start_time"]), _iso(r["end_time"])
    assert t0 - 0.001 <= start <= end <= t1 + 0.001


def test_a_plain_call_recorded_in_one_step_keeps_when_it_was_sent(tag, backend, openai_clients, upstream):
    # A plain reply is recorded in one step when it comes, from the bodies
    # as sent and as read: its start is when the request was sent, its
    # duration the upstream's 150 ms and more, its request the body sent
    # (extra_body merged in).
    import time

    client, _ = openai_clients
    t0 = time.time()
    client.chat.completions.create(
        model="slow-reply", messages=[{"role": "user", "content": "Say this is a test"}], extra_body={"seed": 7}
    )
    t1 = time.time()
    r = backend.one(mine(tag))
    start, end = _iso(r["start_time"]), _iso(r["end_time"])
    assert t0 - 0.001 <= start <= t0 + 0.02, (t0, start)
    assert end - start >= 0.149 and end <= t1 + 0.001, (start, end, t1)
    sent = [body for path, body in upstream.seen if body and body.get("model") == "slow-reply"][-1]
    assert r.json("raw")["request"] == sent
    assert r.json("raw")["request"]["seed"] == 7


def test_before_send_sees_plain_openai_records(tag, backend, openai_clients):
    # With a before_send callback the record is made on the caller's
    # thread, where the callback runs, as always.
    import threading

    client, _ = openai_clients
    threads = []

    def callback(record):
        if (record.get("user_context") or {}).get("test") == tag:
            threads.append(threading.get_ident())
            record["attributes"]["team"] = "search"
        return record

    anosys.set_before_send(callback)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}])
    finally:
        anosys.set_before_send(None)
    r = backend.one(mine(tag))
    assert r["team"] == "search"
    assert threads == [threading.get_ident()]



def test_a_plain_reply_whose_request_body_was_streamed_is_recorded_from_the_arguments(tag, backend, upstream):
    # httpx keeps no request body that was streamed (from a file or an
    # iterator): its `content` raises. The reply is then recorded with the
    # request written out from `create`'s arguments.
    import httpx

    class StreamedRequestBodies(httpx.BaseTransport):
        # Sends each request, then leaves it as a streamed one is left: its
        # body sent and not kept (httpx makes the request it sent the
        # response's `request`).
        def __init__(self):
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request):
            response = self.inner.handle_request(request)
            del request._content
            with pytest.raises(httpx.RequestNotRead):
                request.content
            return response

    client = openai.OpenAI(
        api_key="sk-test-not-a-real-key",
        base_url=upstream.url + "/v1",
        max_retries=0,
        http_client=httpx.Client(transport=StreamedRequestBodies()),
    )
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say this is a test"}], temperature=0.3
    )
    assert reply.choices[0].message.content == "This is a test."
    r = backend.one(mine(tag))
    assert r["gen_ai.request.model"] == "gpt-4o-mini"
    assert r["gen_ai.request.temperature"] == 0.3
    assert r["is_streaming"] is False
    assert r["gen_ai.response.id"] == reply.id
    raw = r.json("raw")
    assert raw["request"] == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say this is a test"}], "temperature": 0.3}
    assert raw["response"]["id"] == reply.id
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == "This is a test."


def test_the_parse_hook_reads_httpx_through_its_public_properties_when_it_must(tag, backend, monkeypatch):
    # The hook reads httpx's `_content` and `_request` attributes directly,
    # and its public properties when they are not there (another httpx).
    from anosys import _native, _openai

    sent = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}'
    body = b'{"id":"c-props","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}'

    class Request:
        content = property(lambda self: sent)

    class Response:
        status_code = 200
        content = property(lambda self: body)
        request = property(lambda self: Request())

    class Streamed(Response):
        @property
        def content(self):
            raise RuntimeError("not read: a stream")

    class API:
        def __init__(self, response):
            self.http_response = response

    url = "http://127.0.0.1:9/v1/chat/completions"
    # What the method leaves to the package's general path.
    general = []
    monkeypatch.setattr(_openai, "_record_other", lambda elapsed, url, kwargs, result, done: general.append(done))
    method = _native.PatchedMethod(None, "chat/completions", _openai)
    reply = object()
    # The hook as openai's `_parse` is patched: the original gives `reply`.
    hook = _native.ParseHook(lambda api: reply)
    assert hook(API(Streamed())) is reply
    method.record(0.01, url, {}, reply)
    assert general == [False], "a stream: nothing kept"
    hook(API(Response()))
    method.record(0.01, url, {}, object())
    assert general == [False, False], "another reply: not this call's"
    hook(API(Response()))
    method.record(0.01, url, {}, reply)
    assert general == [False, False], "recorded in one step"
    method.record(0.01, url, {}, reply)
    assert general == [False, False, False], "taken once"
    r = backend.one(mine(tag))
    assert r["gen_ai.response.id"] == "c-props"
    assert r.json("raw")["request"] == json.loads(sent)
    assert r.json("gen_ai.output.messages")[0]["parts"][0]["content"] == "Hello"
