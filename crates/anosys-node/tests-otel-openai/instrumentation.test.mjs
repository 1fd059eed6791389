// OpenTelemetry's own OpenAI instrumentation (@opentelemetry/instrumentation-openai)
// with anosys's AnosysSpanExporter, against the loopback OpenAI replay
// upstream and AnoSys stand-in of ../tests/servers.mjs: its spans arrive
// as LLM-call records, in the tree of the user's own spans and of the
// functions marked with anosysLogger.
//
// anosys's own capture (AnosysOpenAILogger) is installed first, as at the
// top of an application, then the instrumentation: it wraps the methods
// anosys wrapped, so anosys's record of each call is a child of the
// instrumentation's span (as in the Python package's test).
// instrumentation-order.test.mjs has the other order.
//
// The instrumentation patches openai >=4.19.0 <7, hence openai 6 here
// (package.json). It patches what `require` loads (require-in-the-middle):
// openai's CommonJS build, required after the instrumentation is
// registered.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { OpenAIInstrumentation } from '@opentelemetry/instrumentation-openai';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { setup } from '../tests/servers.mjs';
import { SCOPE, inTree as inTreeOf, llmRecords, openaiVersion } from './support.mjs';

const require = createRequire(import.meta.url);

let env;
let anosys;
let provider;
let tracer;
let client;
let unregister;

before(async () => {
  env = await setup();
  anosys = env.anosys;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new anosys.AnosysSpanExporter())] });
  tracer = provider.getTracer('app');

  // anosys first (the shared classes of openai's CommonJS build) ...
  const logger = new anosys.AnosysOpenAILogger({ openai: require('openai') });
  assert.equal(logger.instrumented, true);
  // ... then the instrumentation, which patches openai on its next require.
  unregister = registerInstrumentations({ tracerProvider: provider, instrumentations: [new OpenAIInstrumentation()] });
  const { OpenAI } = require('openai');
  const create = OpenAI.Chat.Completions.prototype.create;
  assert.equal(create.__wrapped, true, 'the instrumentation patched openai');
  assert.ok(create.__original[Symbol.for('anosys.openai.original')], 'around anosys');
  client = new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });
});

after(async () => {
  unregister?.();
  await provider?.shutdown();
  await env?.close();
});

test("openai 6 and this checkout's anosys are what is tested", async () => {
  assert.equal(openaiVersion().split('.')[0], '6');
  // `anosys` here ("file:..") is the module ../tests/servers.mjs imported.
  assert.equal(await import('anosys'), anosys);
});

/** The call `request` in the tree of inTree (support.mjs), with `count` records. */
const inTree = (request, count) => inTreeOf({ anosys, env, tracer }, request, count);

/** The records of the tree user span > agent > instrumentation's span > anosys's record. */
function tree({ user, records }) {
  const handle = records.find((r) => r.get('name') === 'handle request');
  const agent = records.find((r) => r.get('source') === 'agent');
  const [span, ours] = llmRecords(records);
  assert.ok(handle && agent && span && ours, records.map((r) => `${r.get('name')} (${r.get('source')})`).join(', '));
  for (const r of records) assert.equal(r.must('trace_id'), user.traceId);
  assert.equal(handle.must('span_id'), user.spanId);
  assert.equal(handle.get('parent_id') ?? null, null);
  assert.equal(handle.must('gen_ai.span.kind'), 'SPAN');
  assert.equal(agent.must('parent_id'), user.spanId);
  assert.equal(span.must('parent_id'), agent.must('span_id'));
  assert.equal(ours.must('parent_id'), span.must('span_id'));
  return { span, ours };
}

test("the instrumentation's chat span is an LLM-call record, between the user's function and anosys's record", async () => {
  const found = await inTree(
    (question) => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question }] }),
    4,
  );
  const reply = found.answer;
  assert.equal(reply.choices[0].message.content, 'This is a test.');
  const { span, ours } = tree(found);
  assert.equal(span.must('source'), SCOPE);
  assert.equal(span.must('gen_ai.span.kind'), 'LLM');
  assert.equal(span.must('kind'), 'CLIENT');
  assert.equal(span.must('name'), 'chat gpt-4o-mini');
  assert.equal(span.must('gen_ai.operation.name'), 'chat');
  assert.equal(span.must('gen_ai.request.model'), 'gpt-4o-mini');
  assert.equal(span.must('gen_ai.response.model'), reply.model);
  assert.equal(span.must('gen_ai.response.id'), reply.id);
  assert.equal(span.must('gen_ai.usage.input_tokens'), reply.usage.prompt_tokens);
  assert.equal(span.must('gen_ai.usage.output_tokens'), reply.usage.completion_tokens);
  // anosys's own record of the same call.
  assert.equal(ours.must('name'), 'chat gpt-4o-mini');
  assert.equal(ours.must('gen_ai.response.id'), reply.id);
  assert.equal(ours.must('is_streaming'), false);
  assert.equal(ours.json('gen_ai.input.messages')[0].parts[0].content, found.question);
});

test('a streamed chat completion: the same tree', async () => {
  const found = await inTree(async (question) => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: question }],
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  }, 4);
  assert.match(found.answer, /This is a test/);
  const { span, ours } = tree(found);
  assert.equal(span.must('source'), SCOPE);
  assert.equal(span.must('gen_ai.span.kind'), 'LLM');
  assert.equal(span.must('gen_ai.operation.name'), 'chat');
  assert.equal(span.must('gen_ai.request.model'), 'gpt-4o-mini');
  assert.deepEqual(span.json('gen_ai.response.finish_reasons'), ['stop']);
  assert.equal(ours.must('is_streaming'), true);
  assert.equal(ours.json('gen_ai.output.messages')[0].parts[0].content, found.answer);
  assert.equal(ours.must('gen_ai.response.id'), span.must('gen_ai.response.id'));
});
