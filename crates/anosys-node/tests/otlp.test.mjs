// OTLP from Node: with OTEL_EXPORTER_OTLP_ENDPOINT set, the engine's OTLP
// sink (the addon is built with the `otlp` feature) sends each record as an
// OpenTelemetry span and the GenAI client metrics, as from Rust. The real
// `openai` client, instrumented, calls the replay upstream; a real OTLP/HTTP
// receiver on 127.0.0.1 decodes what arrives.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { OtlpReceiver } from './otlp-receiver.mjs';
import { REPLIES, runProcess, Upstream } from './servers.mjs';

const API_KEY = 'sk-otlp-test-not-a-real-key';
const CHAT = JSON.parse(REPLIES.chat.body);

let receiver;
let upstream;
let anosys;
let dir;

/** OTLP environment for a process sending to `receiver`. */
function otlpEnv(receiver, dir) {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=node-test',
    OTEL_SERVICE_NAME: 'otlp-node-test',
    ANOSYS_FLUSH_INTERVAL_MS: '20',
    ANOSYS_DB: join(dir, 'fallback.db'),
  };
}

before(async () => {
  receiver = await OtlpReceiver.start();
  upstream = await Upstream.start();
  dir = mkdtempSync(join(tmpdir(), 'anosys-node-otlp-'));
  // Only the OTLP sink (no AnoSys URL or key), configured before the first
  // capture reads the environment.
  for (const name of ['ANOSYS_API_KEY', 'ANOSYS_API_URL', 'ANOSYS_SINKS', 'OTEL_METRICS_EXPORTER']) delete process.env[name];
  Object.assign(process.env, otlpEnv(receiver, dir), { OTEL_METRIC_EXPORT_INTERVAL: '100' });
  anosys = await import('anosys');
});

after(async () => {
  anosys.shutdown({ timeoutMs: 5000 }); // the last metrics export, while the receiver listens
  await Promise.all([receiver.close(), upstream.close()]);
  rmSync(dir, { recursive: true, force: true });
});

async function until(what, find, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await anosys.flush({ timeoutMs: 2000 });
    const found = find();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} arrived at the OTLP receiver (${receiver.requests.length} requests)`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The data points of a histogram metric, by `gen_ai.token.type` or all. */
const points = (metric) => metric.histogram.dataPoints.map((p) => ({ ...p, attrs: Object.fromEntries(p.attributes.map((kv) => [kv.key, Object.values(kv.value)[0]])) }));

test('a chat call through instrumentOpenAI arrives as an OTLP span, with the GenAI metrics', async () => {
  const client = anosys.instrumentOpenAI(new OpenAI({ apiKey: API_KEY, baseURL: `${upstream.url}/v1`, maxRetries: 0 }));
  const reply = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Say this is a test' }],
    temperature: 0.2,
  });
  assert.equal(reply.choices[0].message.content, 'This is a test.');

  const { span, attributes: a, resource, scope } = await until('chat span', () =>
    receiver.spans().find((s) => s.span.name === 'chat gpt-4o-mini'),
  );
  assert.equal(span.kind, 'SPAN_KIND_CLIENT');
  assert.equal(span.traceId.length, 16);
  assert.equal(span.spanId.length, 8);
  assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
  assert.notEqual(span.status?.code, 'STATUS_CODE_ERROR');
  assert.equal(a['gen_ai.operation.name'], 'chat');
  assert.equal(a['gen_ai.provider.name'], 'openai');
  assert.equal(a['gen_ai.request.model'], 'gpt-4o-mini');
  assert.equal(a['gen_ai.request.temperature'], 0.2);
  assert.equal(a['gen_ai.response.model'], CHAT.model);
  assert.equal(a['gen_ai.response.id'], CHAT.id);
  assert.deepEqual(a['gen_ai.response.finish_reasons'], ['stop']);
  assert.equal(a['gen_ai.usage.input_tokens'], CHAT.usage.prompt_tokens);
  assert.equal(a['gen_ai.usage.output_tokens'], CHAT.usage.completion_tokens);
  assert.equal(a['server.address'], '127.0.0.1');
  assert.equal(a['server.port'], Number(new URL(upstream.url).port));
  assert.equal(resource['service.name'], 'otlp-node-test');
  assert.equal(resource['telemetry.sdk.name'], 'anosys');
  assert.equal(resource['telemetry.sdk.language'], 'nodejs');
  assert.equal(scope.name, 'anosys');

  // GenAI client metrics: token usage per type, and the duration.
  const metric = (name) => receiver.metricList().find((m) => m.metric.name === name)?.metric;
  const usage = await until('gen_ai.client.token.usage', () => metric('gen_ai.client.token.usage'));
  assert.equal(usage.unit, '{token}');
  const byType = Object.fromEntries(points(usage).map((p) => [p.attrs['gen_ai.token.type'], p]));
  assert.equal(Number(byType.input.sum), CHAT.usage.prompt_tokens);
  assert.equal(Number(byType.output.sum), CHAT.usage.completion_tokens);
  assert.equal(Number(byType.input.count), 1);
  for (const p of Object.values(byType)) {
    assert.equal(p.attrs['gen_ai.operation.name'], 'chat');
    assert.equal(p.attrs['gen_ai.provider.name'], 'openai');
    assert.equal(p.attrs['gen_ai.request.model'], 'gpt-4o-mini');
    assert.equal(p.attrs['gen_ai.response.model'], CHAT.model);
  }
  const duration = metric('gen_ai.client.operation.duration');
  assert.ok(duration, 'gen_ai.client.operation.duration');
  assert.equal(duration.unit, 's');
  assert.equal(Number(points(duration)[0].count), 1);

  // OTEL_EXPORTER_OTLP_HEADERS on both exports; the API key on neither.
  for (const path of ['/v1/traces', '/v1/metrics']) {
    const requests = receiver.requests.filter((r) => r.path === path);
    assert.ok(requests.length > 0, path);
    assert.ok(requests.every((r) => r.headers['x-tenant'] === 'node-test'), path);
  }
  assert.ok(!receiver.requests.some((r) => r.body.includes(API_KEY) || JSON.stringify(r.headers).includes(API_KEY)));
});

test('a short-lived process delivers its span and metrics when it exits, with no flush', async () => {
  const child = await OtlpReceiver.start();
  try {
    const script = `import OpenAI from 'openai';
import { instrumentOpenAI } from 'anosys';
const client = instrumentOpenAI(new OpenAI({ apiKey: process.env.KEY, baseURL: process.env.UPSTREAM + '/v1', maxRetries: 0 }));
const reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say this is a test' }] });
console.log(reply.choices[0].message.content);
`;
    const env = { ...process.env, ...otlpEnv(child, dir), KEY: API_KEY, UPSTREAM: upstream.url };
    delete env.OTEL_METRIC_EXPORT_INTERVAL; // the default 60 s: only the export at exit can bring them
    // cwd: this folder, so that `anosys` and `openai` resolve as for the tests.
    const run = await runProcess(process.execPath, ['--input-type=module', '-e', script], { cwd: import.meta.dirname, env, timeoutMs: 30_000 });
    assert.equal(run.code, 0, run.output);
    assert.match(run.stdout, /This is a test\./);
    assert.ok(child.spans().some((s) => s.span.name === 'chat gpt-4o-mini' && s.attributes['gen_ai.usage.output_tokens'] === CHAT.usage.completion_tokens));
    const names = new Set(child.metricList().map((m) => m.metric.name));
    assert.ok(names.has('gen_ai.client.token.usage'), [...names].join(', '));
    assert.ok(names.has('gen_ai.client.operation.duration'), [...names].join(', '));
  } finally {
    await child.close();
  }
});
