"""The official `openai` Python client against the anosys proxy.

Run by crates/anosys-cli/tests/proxy_clients.rs with the proxy's base URL.
Each case sends `x-anosys-session-id: py-<case>` so the test finds its
record, and prints one JSON line with what the client saw.
"""

import asyncio
import json
import sys

import openai
from openai import AsyncOpenAI, OpenAI

BASE_URL = sys.argv[1]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
                "additionalProperties": False,
            },
        },
    }
]
MESSAGES = [{"role": "user", "content": "Say this is a test"}]


def headers(case):
    return {"x-anosys-session-id": f"py-{case}", "x-anosys-source": "python-app"}


def report(case, **fields):
    print(json.dumps({"case": case, **fields}), flush=True)


def sync_cases():
    client = OpenAI(base_url=BASE_URL, api_key="sk-test-python-key", max_retries=0)

    r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers("chat"))
    report("chat", content=r.choices[0].message.content, total_tokens=r.usage.total_tokens)

    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What's the weather in Seattle and San Francisco today?"}],
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers("stream_tools"),
    )
    names, usage = [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage.completion_tokens
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
    report("stream_tools", tool_calls=names, completion_tokens=usage)

    # The upstream sends one event and holds the rest: the client reads it,
    # breaks out and closes the stream.
    stream = client.chat.completions.create(
        model="gpt-4o-mini-hold", messages=MESSAGES, stream=True, extra_headers=headers("early_break")
    )
    first = None
    for chunk in stream:
        first = chunk.id
        break
    stream.close()
    report("early_break", first_chunk_id=first)

    r = client.embeddings.create(
        model="text-embedding-3-small", input="This is a test for embeddings", extra_headers=headers("embeddings")
    )
    report("embeddings", dimensions=len(r.data[0].embedding))

    cases = [
        ("error_400", lambda h: client.responses.create(model="this-model-does-not-exist", input="Say this is a test", extra_headers=h)),
        ("error_401", lambda h: client.chat.completions.create(model="error-401", messages=MESSAGES, extra_headers=h)),
        ("error_429", lambda h: client.chat.completions.create(model="error-429", messages=MESSAGES, extra_headers=h)),
        ("error_500", lambda h: client.chat.completions.create(model="error-500", messages=MESSAGES, extra_headers=h)),
    ]
    for case, call in cases:
        try:
            call(headers(case))
            report(case, error=None)
        except openai.APIStatusError as e:
            report(case, error=type(e).__name__, status=e.status_code, code=(e.body or {}).get("code") if isinstance(e.body, dict) else None)


async def async_cases():
    client = AsyncOpenAI(base_url=BASE_URL, api_key="sk-test-python-key", max_retries=0)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers("async_chat"))
    report("async_chat", content=r.choices[0].message.content)
    stream = await client.chat.completions.create(
        model="gpt-4", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_headers=headers("async_stream")
    )
    text = ""
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
    report("async_stream", content=text)
    await client.close()


sync_cases()
asyncio.run(async_cases())
