// The real `openai` client against the loopback upstream, instrumented by
// this package; every record is checked at the AnoSys stand-in.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

import { runProcess, setup } from './servers.mjs';

const current = { test: undefined };
const userContext = () => ({ test: current.test, user_id: 'u-42' });
const API_KEY = 'sk-test-not-a-real-key';

let env;
let anosys;
let client;
let logger;

before(async () => {
  env = await setup();
  anosys = env.anosys;
  // The shared classes: clients created before and after are recorded.
  logger = new anosys.AnosysOpenAILogger({ getUserContext: userContext });
  client = new OpenAI({ apiKey: API_KEY, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });
});

after(() => env.close());

beforeEach((t) => {
  current.test = t.name;
});

const mine = (name) => (r) => r.json('user_context')?.test === name;

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather in a given location',
    parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
  },
};
const TOOL_MESSAGES = [
  { role: 'system', content: "You're a helpful assistant." },
  { role: 'user', content: "What's the weather in Seattle and San Francisco today?" },
];
const HELLO = [{ role: 'user', content: 'Say this is a test' }];

test('AnosysOpenAILogger finds the application’s openai package', () => {
  assert.equal(logger.instrumented, true);
});

test('chat completion', async (t) => {
  const { data: reply, response } = await client.chat.completions
    .create({ model: 'gpt-4o-mini', messages: HELLO, temperature: 0.2 })
    .withResponse();
  assert.equal(reply.choices[0].message.content, 'This is a test.');
  assert.equal(response.status, 200, '.withResponse() still works');
  const r = await env.one(mine(t.name));
  assert.equal(r.must('name'), 'chat gpt-4o-mini');
  assert.equal(r.must('gen_ai.operation.name'), 'chat');
  assert.equal(r.must('gen_ai.provider.name'), 'openai');
  assert.equal(r.must('gen_ai.request.model'), 'gpt-4o-mini');
  assert.equal(r.must('gen_ai.request.temperature'), 0.2);
  assert.equal(r.must('gen_ai.response.model'), reply.model);
  assert.equal(r.must('gen_ai.response.id'), reply.id);
  assert.equal(r.must('gen_ai.usage.input_tokens'), reply.usage.prompt_tokens);
  assert.equal(r.must('gen_ai.usage.output_tokens'), reply.usage.completion_tokens);
  assert.deepEqual(r.json('gen_ai.response.finish_reasons'), ['stop']);
  assert.equal(r.must('status_code'), 'OK');
  assert.equal(r.must('server.address'), '127.0.0.1');
  assert.equal(r.must('is_streaming'), false);
  assert.deepEqual(r.json('user_context'), { test: t.name, user_id: 'u-42' });
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, 'This is a test.');
  assert.equal(r.json('gen_ai.input.messages')[0].role, 'user');
  const resource = r.json('otel_resource');
  assert.equal(resource['telemetry.sdk.language'], 'nodejs');
  assert.equal(resource['telemetry.sdk.name'], 'anosys');
  assert.equal(resource['telemetry.sdk.version'], anosys.VERSION);
});

test('a plain call’s text reaches the record as it was, whatever its characters and length', async (t) => {
  // Latin-1 (a one-byte string in V8), other scripts and emoji (two-byte),
  // a lone surrogate (JSON.stringify writes it as an escape, which the
  // record reads as U+FFFD), then text long enough for the addon's buffers
  // to grow and be let go, then short again.
  const texts = [
    'héllo, ünïcödé — naïve café',
    'こんにちは 世界 🎉👩‍💻 Ωμέγα',
    'lone \ud800 surrogate, and a pair: \ud83c\udf89',
    'ʻokina 日本語 🎉 '.repeat(20_000),
    'short again: é',
  ];
  for (const [i, sent] of texts.entries()) {
    const reply = await client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: sent }] });
    assert.equal(reply.choices[0].message.content, sent);
    const content = sent.toWellFormed();
    // The long text is cut to the engine's size for a value: its start.
    const start = `"content":${JSON.stringify(content).slice(0, 4000)}`;
    const r = await env.one((r) => mine(t.name)(r) && r.get('gen_ai.input.messages')?.includes(start));
    assert.ok(r.must('gen_ai.output.messages').includes(start), `text ${i}`);
    if (content.length < 1000) {
      assert.equal(r.json('gen_ai.input.messages')[0].parts[0].content, content, `text ${i}`);
      assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, content, `text ${i}`);
    }
  }
});

test('.asResponse(): the application reads the raw body, the record reads a copy', async (t) => {
  const response = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO }).asResponse();
  const body = await response.json();
  assert.equal(body.choices[0].message.content, 'This is a test.');
  const raw = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO, stream: true }).asResponse();
  const text = await raw.text();
  assert.ok(text.includes('data: [DONE]'));
  const records = await env.waitFor(mine(t.name), { count: 2 });
  const plain = records.find((r) => r.get('is_streaming') === false);
  const streamed = records.find((r) => r.get('is_streaming') === true);
  assert.equal(plain.must('gen_ai.response.id'), body.id);
  assert.equal(plain.json('gen_ai.output.messages')[0].parts[0].content, 'This is a test.');
  assert.equal(streamed.must('status_code'), 'OK');
  assert.ok(streamed.json('gen_ai.output.messages')[0].parts[0].content.length > 0);
});

test('.withResponse() on a stream: recorded once, whole', async (t) => {
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'gpt-4', messages: HELLO, stream: true })
    .withResponse();
  assert.equal(response.status, 200);
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  await env.waitFor(mine(t.name));
  await anosys.flush();
  const records = env.backend.records().filter(mine(t.name));
  assert.equal(records.length, 1);
  assert.equal(records[0].json('gen_ai.output.messages')[0].parts[0].content, text);
});

test('an error of a call nobody awaits is still recorded', async (t) => {
  client.chat.completions.create({ model: 'error-500', messages: HELLO }); // never awaited
  const r = await env.one(mine(t.name));
  assert.equal(r.must('status_code'), 'ERROR');
  assert.equal(r.must('http.response.status_code'), 500);
});

test('chat completion with tool calls', async (t) => {
  const reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: TOOL_MESSAGES, tools: [WEATHER_TOOL], tool_choice: 'auto' });
  const calls = reply.choices[0].message.tool_calls;
  assert.equal(calls.length, 2);
  const r = await env.one(mine(t.name));
  assert.deepEqual(r.json('gen_ai.response.finish_reasons'), ['tool_calls']);
  const toolParts = r.json('gen_ai.output.messages')[0].parts.filter((p) => p.type === 'tool_call');
  assert.deepEqual(toolParts.map((p) => p.id), calls.map((c) => c.id));
  assert.equal(toolParts[0].name, 'get_current_weather');
  assert.deepEqual(r.json('gen_ai.tool.definitions').map((d) => d.name), ['get_current_weather']);
  assert.equal(r.must('gen_ai.request.tool_choice'), 'auto');
});

test('stream with tool calls and include_usage', async (t) => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: TOOL_MESSAGES,
    tools: [WEATHER_TOOL],
    stream: true,
    stream_options: { include_usage: true },
  });
  assert.equal(typeof stream.controller?.abort, 'function', "the caller still gets openai's Stream");
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const usage = chunks.find((c) => c.usage).usage;
  const args = {};
  for (const c of chunks) {
    for (const ch of c.choices) {
      for (const tc of ch.delta.tool_calls ?? []) args[tc.index] = (args[tc.index] ?? '') + (tc.function?.arguments ?? '');
    }
  }
  const r = await env.one(mine(t.name));
  assert.equal(r.must('is_streaming'), true);
  assert.equal(r.must('gen_ai.usage.input_tokens'), usage.prompt_tokens);
  assert.equal(r.must('gen_ai.usage.output_tokens'), usage.completion_tokens);
  assert.deepEqual(r.json('gen_ai.response.finish_reasons'), ['tool_calls']);
  const parts = r.json('gen_ai.output.messages')[0].parts.filter((p) => p.type === 'tool_call');
  assert.equal(parts.length, 2);
  assert.deepEqual(parts.map((p) => p.arguments), Object.keys(args).sort().map((i) => JSON.parse(args[i])));
  assert.equal(r.must('status_code'), 'OK');
  assert.ok([undefined, 'completed'].includes(r.get('anosys.outcome')));
});

test('stream read to the end with async iteration', async (t) => {
  const stream = await client.chat.completions.create({ model: 'gpt-4', messages: HELLO, stream: true, stream_options: { include_usage: true } });
  let text = '';
  for await (const chunk of stream) {
    for (const ch of chunk.choices) text += ch.delta.content ?? '';
  }
  assert.ok(text);
  const r = await env.one(mine(t.name));
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, text);
  assert.deepEqual(r.json('gen_ai.response.finish_reasons'), ['stop']);
  assert.ok(r.must('gen_ai.usage.output_tokens') > 0);
  assert.ok(r.must('gen_ai.response.time_to_first_chunk') >= 0);
});

test('stream left early with break is recorded as cancelled, keeping what arrived', async (t) => {
  const stream = await client.chat.completions.create({ model: 'gpt-4', messages: HELLO, stream: true });
  let first;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) {
      first = chunk.choices[0].delta.content;
      break;
    }
  }
  const r = await env.one(mine(t.name));
  assert.equal(r.must('anosys.outcome'), 'cancelled');
  // What had come when the caller left: the event it read, and any that
  // came in the same network read (the upstream writes one a millisecond).
  const kept = r.json('gen_ai.output.messages')[0].parts[0].content;
  assert.ok(kept.startsWith(first) && '"This is a test."'.startsWith(kept), kept);
  assert.notEqual(r.must('status_code'), 'ERROR');
});

/** Runs `read` counting `JSON.stringify` calls on streamed chunk objects. */
async function chunksWrittenOut(read) {
  const stringify = JSON.stringify;
  let count = 0;
  JSON.stringify = function (value, ...rest) {
    if (value?.object === 'chat.completion.chunk') count += 1;
    return stringify.call(this, value, ...rest);
  };
  try {
    await read();
  } finally {
    JSON.stringify = stringify;
  }
  return count;
}

const streamedText = async (stream) => {
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
};

test('a stream reaches the engine as the bytes that came: no event is written out again', async (t) => {
  let text;
  const written = await chunksWrittenOut(async () => {
    text = await streamedText(await client.chat.completions.create({ model: 'gpt-4', messages: HELLO, stream: true }));
  });
  assert.equal(written, 0);
  const r = await env.one(mine(t.name));
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, text);
  assert.equal(r.must('anosys.stream.chunks'), 8);
});

test('a long stream (450 KB, a comment event first) is recorded whole, its time to first chunk that of its first event', async (t) => {
  const t0 = Date.now();
  const stream = await client.chat.completions.create({ model: 'long-stream', messages: HELLO, stream: true });
  let text = '';
  let chunks = 0;
  let first;
  for await (const chunk of stream) {
    first ??= Date.now();
    chunks += 1;
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, '"This is a test."'.repeat(300));
  const r = await env.one(mine(t.name));
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, text);
  assert.equal(r.must('anosys.stream.chunks'), chunks);
  assert.deepEqual(r.json('gen_ai.response.finish_reasons'), ['stop']);
  const start = Date.parse(r.must('start_time'));
  const ttfc = r.must('gen_ai.response.time_to_first_chunk') * 1000;
  assert.ok(ttfc <= first - t0 + 2, `first chunk read ${first - t0} ms after the call, recorded ${ttfc} ms`);
  assert.ok(start >= t0 - 1, `${start} ${t0}`);
});

test('a stream read through tee() or toReadableStream() is recorded once, whole', async (t) => {
  const stream = await client.chat.completions.create({ model: 'gpt-4', messages: HELLO, stream: true });
  const [left, right] = stream.tee();
  const [a, b] = await Promise.all([streamedText(left), streamedText(right)]);
  assert.equal(a, b);
  const again = await client.chat.completions.create({ model: 'gpt-4', messages: HELLO, stream: true });
  let lines = '';
  for await (const bytes of again.toReadableStream()) lines += new TextDecoder().decode(bytes);
  const fromLines = lines.trim().split('\n').map((l) => JSON.parse(l).choices[0]?.delta?.content ?? '').join('');
  assert.equal(fromLines, a);
  await anosys.flush();
  const records = env.backend.records().filter(mine(t.name));
  assert.equal(records.length, 2);
  for (const r of records) {
    assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, a);
    assert.equal(r.must('anosys.stream.chunks'), 8);
  }
});

test('a stream whose body cannot be stood in for is recorded from its events', async (t) => {
  // A fetch that pins the response's body as its own property: anosys
  // leaves the response as it is and records the events openai parsed.
  const pinned = new OpenAI({
    apiKey: API_KEY,
    baseURL: `${env.upstream.url}/v1`,
    maxRetries: 0,
    fetch: async (...args) => {
      const response = await fetch(...args);
      Object.defineProperty(response, 'body', { value: response.body, enumerable: true });
      return response;
    },
  });
  let text;
  const written = await chunksWrittenOut(async () => {
    text = await streamedText(await pinned.chat.completions.create({ model: 'gpt-4', messages: HELLO, stream: true }));
  });
  assert.equal(written, 8, 'each event written out once');
  const r = await env.one(mine(t.name));
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, text);
  assert.equal(r.must('anosys.stream.chunks'), 8);
});

test('openai 6 (its stream read through the body’s async iterator): plain and streamed calls recorded', async (t) => {
  const { default: OpenAI6 } = await import('openai6');
  const six = anosys.instrumentOpenAI(new OpenAI6({ apiKey: API_KEY, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 }), { getUserContext: userContext });
  const reply = await six.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
  let text;
  const written = await chunksWrittenOut(async () => {
    text = await streamedText(await six.chat.completions.create({ model: 'gpt-4', messages: HELLO, stream: true }));
  });
  assert.equal(written, 0);
  await anosys.flush();
  const records = env.backend.records().filter(mine(t.name));
  assert.equal(records.length, 2);
  const streamed = records.find((r) => r.get('is_streaming') === true);
  const plain = records.find((r) => r !== streamed);
  assert.equal(streamed.json('gen_ai.output.messages')[0].parts[0].content, text);
  assert.equal(streamed.must('anosys.stream.chunks'), 8);
  assert.equal(plain.json('gen_ai.output.messages')[0].parts[0].content, reply.choices[0].message.content);
});

test('stream.controller.abort() is recorded as cancelled', async (t) => {
  const stream = await client.chat.completions.create({ model: 'slow-stream', messages: HELLO, stream: true });
  let seen = 0;
  for await (const chunk of stream) {
    seen += 1;
    if (chunk.choices[0]?.delta?.content) stream.controller.abort();
  }
  assert.ok(seen >= 1);
  const r = await env.one(mine(t.name));
  assert.equal(r.must('anosys.outcome'), 'cancelled');
  assert.notEqual(r.must('status_code'), 'ERROR');
});

test('a stream handed over at its end keeps when each event came: time to first chunk, end', async (t) => {
  // 40 ms between the upstream's events, a comment event first: the body
  // goes to the addon at once up to its first event with data, the chunks
  // after it are held on the JavaScript side and handed over together at
  // the end (the addon keeps when each came that it was given).
  const t0 = Date.now();
  const stream = await client.chat.completions.create({ model: 'slow-stream', messages: HELLO, stream: true });
  let first;
  let chunks = 0;
  for await (const _ of stream) {
    first ??= Date.now();
    chunks += 1;
  }
  const t1 = Date.now();
  const r = await env.one(mine(t.name));
  const start = Date.parse(r.must('start_time'));
  const end = Date.parse(r.must('end_time'));
  const ttfc = r.must('gen_ai.response.time_to_first_chunk') * 1000;
  assert.ok(chunks >= 3, `${chunks} chunks`);
  assert.ok(t0 - 1 <= start && start <= t0 + 20, `started when sent: ${t0} ${start}`);
  assert.ok(ttfc <= first - start + 2 && ttfc >= first - start - 45, `first chunk at ${first - start} ms, recorded ${ttfc}`);
  assert.ok(end - start >= 40 * (chunks - 1) - 2 && end <= t1 + 1, `${start} ${end} ${t1}, ${chunks} chunks 40 ms apart`);
  assert.ok(ttfc < end - start - 40, `the first chunk well before the end: ${ttfc} of ${end - start} ms`);
});

test('an error event mid-stream is recorded and thrown', async (t) => {
  const stream = await client.chat.completions.create({ model: 'broken-stream', messages: HELLO, stream: true });
  let thrown;
  try {
    for await (const _ of stream);
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof OpenAI.APIError);
  const r = await env.one(mine(t.name));
  assert.equal(r.must('status_code'), 'ERROR');
  assert.equal(r.must('error_message'), thrown.message);
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, 'Par');
});

for (const [model, status, Error, code] of [
  ['this-model-does-not-exist', 404, OpenAI.NotFoundError, 'model_not_found'],
  ['error-401', 401, OpenAI.AuthenticationError, 'test_401'],
  ['error-429', 429, OpenAI.RateLimitError, 'test_429'],
  ['error-500', 500, OpenAI.InternalServerError, 'test_500'],
]) {
  test(`API error ${status} is recorded and re-thrown as openai threw it`, async (t) => {
    await assert.rejects(client.chat.completions.create({ model, messages: HELLO }), (error) => {
      assert.ok(error instanceof Error);
      assert.equal(error.status, status);
      return true;
    });
    const r = await env.one(mine(t.name));
    assert.equal(r.must('status_code'), 'ERROR');
    assert.equal(r.must('http.response.status_code'), status);
    assert.equal(r.must('error_type'), code);
  });
}

test('a connection error is recorded and thrown', async (t) => {
  const offline = new OpenAI({ apiKey: API_KEY, baseURL: 'http://127.0.0.1:9/v1', maxRetries: 0 });
  await assert.rejects(offline.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO }), OpenAI.APIConnectionError);
  const r = await env.one(mine(t.name));
  assert.equal(r.must('status_code'), 'ERROR');
  assert.equal(r.must('error_type'), 'APIConnectionError');
});

test('embeddings', async (t) => {
  const reply = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'This is a test for embeddings', encoding_format: 'float' });
  const r = await env.one(mine(t.name));
  assert.equal(r.must('gen_ai.operation.name'), 'embeddings');
  assert.equal(r.must('name'), 'embeddings text-embedding-3-small');
  assert.equal(r.must('gen_ai.usage.input_tokens'), reply.usage.prompt_tokens);
  assert.equal(r.must('gen_ai.embeddings.dimension.count'), reply.data[0].embedding.length);
});

test('embeddings as openai asks for them by default (base64, decoded by openai)', async (t) => {
  const reply = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'This is a test for embeddings' });
  assert.equal(reply.data[0].embedding.length, 1536);
  const r = await env.one(mine(t.name));
  assert.equal(r.must('gen_ai.embeddings.dimension.count'), 1536);
  assert.equal(r.must('output'), '1 embedding(s) of 1536 dimensions');
  // The record keeps the reply as it came, its vector not copied.
  assert.equal(r.json('raw').response.data[0].embedding, '[anosys: 1536 floats not kept]');
  assert.equal(r.json('raw').response.usage.prompt_tokens, reply.usage.prompt_tokens);
});

test('images.generate', async (t) => {
  const reply = await client.images.generate({ model: 'gpt-image-1', prompt: 'a small cat', size: '1024x1024' });
  assert.ok(reply.data[0].url);
  const r = await env.one(mine(t.name));
  assert.equal(r.must('gen_ai.operation.name'), 'generate_content');
  assert.equal(r.must('gen_ai.request.model'), 'gpt-image-1');
  assert.equal(r.must('status_code'), 'OK');
});

test('responses.create, plain and streamed', async (t) => {
  const reply = await client.responses.create({ model: 'gpt-4o-mini', input: 'Say this is a test', instructions: 'You are a helpful assistant.' });
  const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Say this is a test', stream: true });
  const events = [];
  for await (const e of stream) events.push(e);
  const records = await env.waitFor(mine(t.name), { count: 2 });
  const plain = records.find((r) => r.get('is_streaming') === false);
  const streamed = records.find((r) => r.get('is_streaming') === true);
  assert.equal(plain.must('gen_ai.response.id'), reply.id);
  assert.equal(plain.must('gen_ai.usage.output_tokens'), reply.usage.output_tokens);
  assert.equal(plain.json('gen_ai.output.messages')[0].parts[0].content, reply.output_text);
  const done = events.find((e) => e.type === 'response.completed');
  assert.equal(streamed.must('gen_ai.response.id'), done.response.id);
  assert.equal(streamed.must('gen_ai.usage.output_tokens'), done.response.usage.output_tokens);
});

test('a Responses API error', async (t) => {
  await assert.rejects(client.responses.create({ model: 'this-model-does-not-exist', input: 'Hello' }), OpenAI.BadRequestError);
  const r = await env.one(mine(t.name));
  assert.equal(r.must('error_type'), 'model_not_found');
});

test('instrumenting twice records once', async (t) => {
  new anosys.AnosysOpenAILogger({ getUserContext: userContext });
  const twice = anosys.instrumentOpenAI(anosys.instrumentOpenAI(new OpenAI({ apiKey: API_KEY, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 })));
  await twice.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
  await env.waitFor(mine(t.name));
  await anosys.flush();
  await new Promise((r) => setTimeout(r, 100));
  await anosys.flush();
  assert.equal(env.backend.records().filter(mine(t.name)).length, 1);
});

test('a method another wrapper awaits too (as OpenTelemetry’s instrumentation does) reads the reply once', async (t) => {
  // What @opentelemetry/instrumentation-openai does to the method anosys
  // then wraps: it awaits the APIPromise it returns, for its own span
  // (tests-otel-openai has the instrumentation itself, on openai 6).
  const other = new OpenAI({ apiKey: API_KEY, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });
  const unwrapped = Object.getPrototypeOf(other.chat.completions).create[Symbol.for('anosys.openai.original')];
  const seen = [];
  other.chat.completions.create = function (body, options) {
    const promise = unwrapped.call(this, body, options);
    promise.then((data) => seen.push(data));
    return promise;
  };
  anosys.instrumentOpenAI(other);
  const reply = await other.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
  assert.equal(reply.choices[0].message.content, 'This is a test.');
  const stream = await other.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.ok(text.length > 0);
  assert.deepEqual(seen, [reply, stream], 'the other wrapper got the same reply and stream');
  const records = await env.waitFor(mine(t.name), { count: 2 });
  assert.equal(records.length, 2);
  const plain = records.find((r) => r.get('is_streaming') === false);
  const streamed = records.find((r) => r.get('is_streaming') === true);
  assert.equal(plain.must('gen_ai.response.id'), reply.id);
  assert.equal(streamed.json('gen_ai.output.messages')[0].parts[0].content, text);
});

test('calls inside a logged function are its children, across awaits', async (t) => {
  const plan = anosys.anosysLogger('agent')(async function plan() {
    await new Promise((r) => setTimeout(r, 1));
    const reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
    return reply.id;
  });
  const id = await plan();
  const chat = await env.one(mine(t.name));
  assert.equal(chat.must('gen_ai.response.id'), id);
  const fn = await env.one((r) => r.get('name') === 'plan' && r.get('trace_id') === chat.must('trace_id'));
  assert.equal(chat.must('parent_id'), fn.must('span_id'));
  assert.equal(fn.must('source'), 'agent');
});

test('secrets never reach the backend', async (t) => {
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
  const r = await env.one(mine(t.name));
  assert.ok(!JSON.stringify(r.body).includes(API_KEY));
  assert.ok(!JSON.stringify(env.backend.bodies).includes(API_KEY));
});

test('a failing getUserContext does not break calls', async () => {
  anosys.instrumentOpenAI(client, {
    getUserContext: () => {
      throw new Error('no session');
    },
  });
  let reply;
  try {
    reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
  } finally {
    anosys.instrumentOpenAI(client, { getUserContext: userContext });
  }
  const r = await env.one((r) => JSON.stringify(r.json('user_context') ?? {}).includes('no session'));
  assert.equal(r.must('gen_ai.response.id'), reply.id);
});

test('the request recorded is the body openai sent, through the shared classes and one client alike', async (t) => {
  const check = async (openai, body, seenBefore) => {
    await openai.embeddings.create(body);
    const sent = env.upstream.seen.slice(seenBefore).find((x) => x.path.endsWith('/embeddings'));
    // openai adds what it asks for by default (base64 vectors, decoded for the caller).
    assert.equal(sent.body.encoding_format, 'base64');
    return sent.body;
  };
  const body = { model: 'text-embedding-3-small', input: 'sent as built' };
  const first = await check(client, body, env.upstream.seen.length);
  anosys.uninstrumentOpenAI(client);
  let own;
  try {
    own = anosys.instrumentOpenAI(new OpenAI({ apiKey: API_KEY, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 }));
    const second = await check(own, body, env.upstream.seen.length);
    const records = await env.waitFor(mine(t.name), { count: 2 });
    assert.equal(records.length, 2);
    for (const [r, sent] of records.map((r, i) => [r, [first, second][i]])) {
      assert.deepEqual(r.json('raw').request, sent);
      assert.equal(r.must('gen_ai.embeddings.dimension.count'), 1536);
    }
    // The body the application passed is not changed.
    assert.deepEqual(body, { model: 'text-embedding-3-small', input: 'sent as built' });
  } finally {
    anosys.uninstrumentOpenAI(own);
    new anosys.AnosysOpenAILogger({ getUserContext: userContext });
  }
});

test('instrumentOpenAI on one client records that client', async (t) => {
  anosys.uninstrumentOpenAI(client);
  try {
    const plain = new OpenAI({ apiKey: API_KEY, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });
    await plain.embeddings.create({ model: 'text-embedding-3-small', input: 'not recorded', encoding_format: 'float' });
    const own = anosys.instrumentOpenAI(new OpenAI({ apiKey: API_KEY, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 }));
    await own.embeddings.create({ model: 'text-embedding-3-small', input: 'recorded', encoding_format: 'float' });
    const records = await env.waitFor(mine(t.name));
    await anosys.flush();
    assert.equal(env.backend.records().filter(mine(t.name)).length, 1);
    assert.equal(records[0].must('gen_ai.operation.name'), 'embeddings');
  } finally {
    new anosys.AnosysOpenAILogger({ getUserContext: userContext });
  }
});

/**
 * Runs `body` in a Node process of its own with openai instrumented (for
 * calls tagged `test`), then collects garbage a few times and prints the
 * flush's counters: what the collection recorded, before the exit
 * handler could.
 */
async function afterCollection(test, body) {
  const { code, stdout, stderr } = await runProcess(
    process.execPath,
    [
      '--expose-gc',
      '--input-type=module',
      '-e',
      `
      import OpenAI from 'openai';
      import { AnosysOpenAILogger, flush } from 'anosys';
      new AnosysOpenAILogger({ getUserContext: () => ({ test: ${JSON.stringify(test)} }) });
      const client = new OpenAI({ apiKey: 'sk-x', baseURL: process.env.UPSTREAM + '/v1', maxRetries: 0 });
      ${body}
      for (let i = 0; i < 20; i++) {
        globalThis.gc();
        await new Promise((r) => setTimeout(r, 10));
      }
      console.log(JSON.stringify(await flush()));
      `,
    ],
    {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, UPSTREAM: env.upstream.url },
    },
  );
  assert.equal(code, 0, stderr);
  return JSON.parse(stdout);
}

test('process.exit() mid-stream records the events held on the JavaScript side', async () => {
  // Events after a stream's first are held in JavaScript and handed to the
  // addon together at the end; the process exits before that end here.
  const { code, stdout, stderr } = await runProcess(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
      import OpenAI from 'openai';
      import { AnosysOpenAILogger } from 'anosys';
      new AnosysOpenAILogger({ getUserContext: () => ({ test: 'exit-mid-stream' }) });
      const client = new OpenAI({ apiKey: 'sk-x', baseURL: process.env.UPSTREAM + '/v1', maxRetries: 0 });
      const stream = await client.chat.completions.create({ model: 'slow-stream', messages: [{ role: 'user', content: 'hi' }], stream: true });
      let seen = '';
      let chunks = 0;
      for await (const chunk of stream) {
        chunks += 1;
        seen += chunk.choices[0]?.delta?.content ?? '';
        if (chunks === 4) {
          console.log(JSON.stringify({ seen, chunks }));
          process.exit(0);
        }
      }
      `,
    ],
    { cwd: fileURLToPath(new URL('..', import.meta.url)), env: { ...process.env, UPSTREAM: env.upstream.url } },
  );
  assert.equal(code, 0, stderr);
  const { seen, chunks } = JSON.parse(stdout);
  assert.ok(seen.length > 0, stdout);
  const r = await env.one(mine('exit-mid-stream'));
  assert.equal(r.must('anosys.outcome'), 'cancelled');
  assert.equal(r.must('is_streaming'), true);
  // Every event the application read is in the record (the reader may
  // have taken the next one from the body already).
  assert.ok(r.must('anosys.stream.chunks') >= chunks, `${r.must('anosys.stream.chunks')} < ${chunks}`);
  const content = r.json('gen_ai.output.messages')[0].parts[0].content;
  assert.ok(content.startsWith(seen), `recorded ${JSON.stringify(content)}, read ${JSON.stringify(seen)}`);
});

test('a stream dropped unread is recorded as cancelled once collected', async () => {
  const counters = await afterCollection(
    'dropped-unread',
    `await (async () => {
        const stream = await client.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: 'hi' }], stream: true });
        stream.controller.abort();
      })();`,
  );
  assert.equal(counters.captured, 1, JSON.stringify(counters));
  const r = await env.one(mine('dropped-unread'));
  assert.equal(r.must('anosys.outcome'), 'cancelled');
  assert.equal(r.must('is_streaming'), true);
});

test('a plain call never awaited is recorded as cancelled once collected, after its reply came', async () => {
  const counters = await afterCollection(
    'never-awaited',
    `let sent = client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
      // The reply comes; nobody asks for it.
      await new Promise((r) => setTimeout(r, 300));
      sent = undefined;`,
  );
  assert.equal(counters.captured, 1, JSON.stringify(counters));
  const r = await env.one(mine('never-awaited'));
  assert.equal(r.must('anosys.outcome'), 'cancelled');
  assert.equal(r.must('gen_ai.request.model'), 'gpt-4o-mini');
});

test('a plain call awaited only after its reply came is recorded once, completed', async (t) => {
  const sent = client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
  await new Promise((r) => setTimeout(r, 200));
  if (globalThis.gc) globalThis.gc();
  const reply = await sent;
  await anosys.flush();
  const mineNow = env.backend.records().filter(mine(t.name));
  assert.equal(mineNow.length, 1);
  const r = await env.one(mine(t.name));
  assert.ok([undefined, 'completed'].includes(r.get('anosys.outcome')));
  assert.deepEqual(r.json('raw').response, JSON.parse(JSON.stringify(reply)));
});

test('a plain reply is recorded off the event loop as before: times are the caller’s, counted at once', async (t) => {
  const before = anosys.counters().captured;
  const t0 = Date.now();
  const reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
  const t1 = Date.now();
  assert.ok(anosys.counters().captured >= before + 1);
  const r = await env.one(mine(t.name));
  assert.deepEqual(r.json('raw').response, JSON.parse(JSON.stringify(reply)));
  const start = Date.parse(r.must('start_time'));
  const end = Date.parse(r.must('end_time'));
  assert.ok(t0 - 1 <= start && start <= end && end <= t1 + 1, `${t0} ${start} ${end} ${t1}`);
});

test('a plain call recorded in one step when its reply comes keeps the time the request was sent', async (t) => {
  const t0 = Date.now();
  await client.chat.completions.create({ model: 'slow-reply', messages: HELLO });
  const t1 = Date.now();
  const r = await env.one(mine(t.name));
  const start = Date.parse(r.must('start_time'));
  const end = Date.parse(r.must('end_time'));
  assert.ok(t0 - 1 <= start && start <= t0 + 20, `started when sent: ${t0} ${start}`);
  assert.ok(end - start >= 149 && end <= t1 + 1, `the upstream's 150 ms in the duration: ${start} ${end} ${t1}`);
  assert.ok([undefined, 'completed'].includes(r.get('anosys.outcome')));
});

test('setBeforeSend sees plain openai records, on the event loop', async (t) => {
  let seen = 0;
  anosys.setBeforeSend((record) => {
    if (record.user_context?.test === t.name) {
      seen += 1;
      record.attributes.team = 'search';
    }
    return record;
  });
  try {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: HELLO });
    assert.equal(seen, 1, 'called before the call returned');
  } finally {
    anosys.setBeforeSend(null);
  }
  const r = await env.one(mine(t.name));
  assert.equal(r.must('team'), 'search');
});
