// The official `openai` npm client against the anosys proxy.
//
// Run by crates/anosys-cli/tests/proxy_clients.rs with the proxy's base URL.
// Each case sends `x-anosys-session-id: js-<case>` so the test finds its
// record, and prints one JSON line with what the client saw.

import OpenAI from "openai";

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: "sk-test-node-key", maxRetries: 0 });
const messages = [{ role: "user", content: "Say this is a test" }];
const tools = [
  {
    type: "function",
    function: {
      name: "get_current_weather",
      description: "Get the current weather in a given location",
      parameters: {
        type: "object",
        properties: { location: { type: "string" } },
        required: ["location"],
        additionalProperties: false,
      },
    },
  },
];

const headers = (name) => ({ "x-anosys-session-id": `js-${name}`, "x-anosys-source": "node-app" });
const report = (name, fields) => console.log(JSON.stringify({ case: name, ...fields }));

{
  const r = await client.chat.completions.create({ model: "gpt-4o-mini", messages }, { headers: headers("chat") });
  report("chat", { content: r.choices[0].message.content, total_tokens: r.usage.total_tokens });
}

{
  const stream = await client.chat.completions.create(
    {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "What's the weather in Seattle and San Francisco today?" }],
      tools,
      stream: true,
      stream_options: { include_usage: true },
    },
    { headers: headers("stream_tools") },
  );
  const names = [];
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage.completion_tokens;
    for (const choice of chunk.choices) {
      for (const call of choice.delta.tool_calls ?? []) {
        if (call.function?.name) names.push(call.function.name);
      }
    }
  }
  report("stream_tools", { tool_calls: names, completion_tokens: usage });
}

{
  // One event, then the upstream holds the rest: break out of the loop.
  const stream = await client.chat.completions.create(
    { model: "gpt-4o-mini-hold", messages, stream: true },
    { headers: headers("early_break") },
  );
  let first = null;
  for await (const chunk of stream) {
    first = chunk.id;
    break;
  }
  report("early_break", { first_chunk_id: first });
}

{
  // The same, stopped with the stream's AbortController.
  const stream = await client.chat.completions.create(
    { model: "gpt-4o-mini-hold", messages, stream: true },
    { headers: headers("abort") },
  );
  let first = null;
  try {
    for await (const chunk of stream) {
      first = chunk.id;
      stream.controller.abort();
    }
  } catch (e) {
    if (!(e instanceof OpenAI.APIUserAbortError) && e.name !== "AbortError") throw e;
  }
  report("abort", { first_chunk_id: first });
}

{
  const r = await client.embeddings.create(
    { model: "text-embedding-3-small", input: "This is a test for embeddings" },
    { headers: headers("embeddings") },
  );
  report("embeddings", { dimensions: r.data[0].embedding.length });
}

const errors = [
  ["error_400", (h) => client.responses.create({ model: "this-model-does-not-exist", input: "Say this is a test" }, { headers: h })],
  ["error_401", (h) => client.chat.completions.create({ model: "error-401", messages }, { headers: h })],
  ["error_429", (h) => client.chat.completions.create({ model: "error-429", messages }, { headers: h })],
  ["error_500", (h) => client.chat.completions.create({ model: "error-500", messages }, { headers: h })],
];
for (const [name, call] of errors) {
  try {
    await call(headers(name));
    report(name, { error: null });
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    report(name, { error: e.constructor.name, status: e.status, code: e.code ?? null });
  }
}
