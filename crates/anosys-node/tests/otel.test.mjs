// AnosysSpanExporter and OpenTelemetry context in both directions, with the
// real @opentelemetry/sdk-trace-base and the AsyncLocalStorage context
// manager, checked at the AnoSys stand-in.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import OpenAI from 'openai';

import { setup } from './servers.mjs';

let env;
let anosys;
let provider;
let tracer;

before(async () => {
  env = await setup();
  anosys = env.anosys;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'otel-node-test' }),
    spanProcessors: [new SimpleSpanProcessor(new anosys.AnosysSpanExporter())],
  });
  tracer = provider.getTracer('checkout', '1.2.3');
});

after(async () => {
  await provider.shutdown();
  await env.close();
});

const run = () => randomUUID().slice(0, 10);

test("the user's spans arrive whole, with their tree", async () => {
  const id = run();
  let rootIds;
  let childIds;
  tracer.startActiveSpan(`order ${id}`, { kind: SpanKind.SERVER, attributes: { run: id } }, (root) => {
    rootIds = root.spanContext();
    tracer.startActiveSpan(`charge ${id}`, { attributes: { run: id, amount: 12.5, tags: ['a', 'b'] } }, (child) => {
      childIds = child.spanContext();
      child.addEvent('card checked', { ok: true });
      child.recordException(new TypeError('card declined'));
      child.setStatus({ code: SpanStatusCode.ERROR, message: 'payment failed' });
      child.end();
    });
    root.end();
  });
  const records = await env.waitFor((r) => r.get('run') === id, { count: 2 });
  const byName = Object.fromEntries(records.map((r) => [r.get('name'), r]));
  const order = byName[`order ${id}`];
  const charge = byName[`charge ${id}`];
  assert.equal(order.must('trace_id'), rootIds.traceId);
  assert.equal(charge.must('trace_id'), rootIds.traceId);
  assert.equal(charge.must('parent_id'), rootIds.spanId);
  assert.equal(charge.must('span_id'), childIds.spanId);
  assert.equal(order.must('kind'), 'SERVER');
  assert.equal(order.must('gen_ai.span.kind'), 'SPAN');
  assert.equal(order.must('source'), 'checkout');
  assert.equal(order.must('otel.scope.version'), '1.2.3');
  assert.equal(charge.must('amount'), 12.5);
  assert.equal(charge.must('status_code'), 'ERROR');
  assert.equal(charge.must('error_type'), 'TypeError');
  assert.equal(charge.must('error_message'), 'card declined');
  assert.deepEqual(
    charge.json('events').map((e) => e.name),
    ['card checked', 'exception'],
  );
  assert.equal(charge.must('service.name'), 'otel-node-test');
  assert.ok(charge.must('otel_duration_ms') >= 0);
});

test('context goes both ways between OpenTelemetry spans and anosysLogger functions', async () => {
  const id = run();
  const leaf = anosys.anosysLogger(`leaf-${id}`)(async function leaf() {
    await new Promise((r) => setTimeout(r, 5));
    return 1;
  });
  const work = anosys.anosysLogger(`work-${id}`)(async function work() {
    return tracer.startActiveSpan(`inner ${id}`, { attributes: { run: id } }, async (inner) => {
      try {
        return await leaf();
      } finally {
        inner.end();
      }
    });
  });
  let outerIds;
  await tracer.startActiveSpan(`outer ${id}`, { attributes: { run: id } }, async (outer) => {
    outerIds = outer.spanContext();
    assert.equal(await work(), 1);
    outer.end();
  });
  const spans = Object.fromEntries(
    (await env.waitFor((r) => r.get('run') === id, { count: 2 })).map((r) => [r.get('name').split(' ')[0], r]),
  );
  const workRecord = await env.one((r) => r.get('source') === `work-${id}`);
  const leafRecord = await env.one((r) => r.get('source') === `leaf-${id}`);
  for (const r of [spans.outer, spans.inner, workRecord, leafRecord]) {
    assert.equal(r.must('trace_id'), outerIds.traceId);
  }
  // outer (OpenTelemetry) > work (anosys) > inner (OpenTelemetry) > leaf (anosys)
  assert.equal(workRecord.must('parent_id'), spans.outer.must('span_id'));
  assert.equal(spans.inner.must('parent_id'), workRecord.must('span_id'));
  assert.equal(leafRecord.must('parent_id'), spans.inner.must('span_id'));
});

test('an OpenAI call recorded by anosys inside an OpenTelemetry span is its child', async () => {
  const id = run();
  const logger = new anosys.AnosysOpenAILogger({ getUserContext: () => ({ run: id }) });
  const client = new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });
  let handleIds;
  await tracer.startActiveSpan(`handle ${id}`, async (span) => {
    handleIds = span.spanContext();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hello ${id}` }] });
    span.end();
  });
  const call = await env.one((r) => r.get('gen_ai.span.kind') === 'LLM' && r.json('user_context')?.run === id);
  assert.equal(call.must('trace_id'), handleIds.traceId);
  assert.equal(call.must('parent_id'), handleIds.spanId);
  logger.uninstrument?.();
});
