// The other order than instrumentation.test.mjs: OpenTelemetry's OpenAI
// instrumentation registered and openai loaded first (as with
// `node --import ./telemetry.mjs app.mjs`), anosys's own capture installed
// after. anosys then wraps the instrumentation's patched method, and its
// record of the call is a sibling of the instrumentation's span: both are
// children of the function around the call. Both read the same parsed
// reply (before anosys shared it, the second read of the body failed the
// application's call: "Body has already been read").

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { OpenAIInstrumentation } from '@opentelemetry/instrumentation-openai';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { setup } from '../tests/servers.mjs';
import { SCOPE, inTree as inTreeOf, llmRecords } from './support.mjs';

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
  unregister = registerInstrumentations({ tracerProvider: provider, instrumentations: [new OpenAIInstrumentation()] });
  const openai = require('openai');
  assert.equal(openai.OpenAI.Chat.Completions.prototype.create.__wrapped, true, 'the instrumentation patched openai');
  const logger = new anosys.AnosysOpenAILogger({ openai });
  assert.equal(logger.instrumented, true);
  client = new openai.OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });
});

after(async () => {
  // anosys's wrappers off first: the instrumentation then unwraps its own.
  if (client) anosys.uninstrumentOpenAI(client);
  unregister?.();
  await provider?.shutdown();
  await env?.close();
});

/** The call `request` in the tree of inTree (support.mjs), its records checked for this order: its answer, the two LLM-call records. */
async function inTree(request) {
  const { user, answer, question, records } = await inTreeOf({ anosys, env, tracer }, request, 4);
  const handle = records.find((r) => r.get('name') === 'handle request');
  const agentRecord = records.find((r) => r.get('source') === 'agent');
  const [span, ours] = llmRecords(records);
  assert.equal(handle.must('span_id'), user.spanId);
  assert.equal(agentRecord.must('parent_id'), user.spanId);
  assert.equal(span.must('parent_id'), agentRecord.must('span_id'));
  assert.equal(ours.must('parent_id'), agentRecord.must('span_id'));
  assert.equal(span.must('source'), SCOPE);
  assert.equal(span.must('gen_ai.operation.name'), 'chat');
  assert.equal(ours.json('gen_ai.input.messages')[0].parts[0].content, question);
  return { answer, span, ours };
}

test("instrumentation first: anosys's record and the instrumentation's span are both children of the user's function", async () => {
  const { answer: reply, span, ours } = await inTree((question) =>
    client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question }] }),
  );
  assert.equal(reply.choices[0].message.content, 'This is a test.');
  assert.equal(span.must('gen_ai.usage.input_tokens'), reply.usage.prompt_tokens);
  assert.equal(span.must('gen_ai.response.id'), reply.id);
  assert.equal(ours.must('gen_ai.response.id'), reply.id);
  assert.equal(ours.must('is_streaming'), false);
});

test('instrumentation first, streamed: both see every event', async () => {
  const { answer, span, ours } = await inTree(async (question) => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: question }],
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  });
  assert.match(answer, /This is a test/);
  assert.deepEqual(span.json('gen_ai.response.finish_reasons'), ['stop']);
  assert.equal(ours.must('is_streaming'), true);
  assert.equal(ours.json('gen_ai.output.messages')[0].parts[0].content, answer);
  assert.equal(ours.must('gen_ai.response.id'), span.must('gen_ai.response.id'));
});
