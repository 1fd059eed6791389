// Shared by the tests of this folder.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The instrumentation's scope name: the `source` of its spans' records. */
export const SCOPE = '@opentelemetry/instrumentation-openai';

/** The installed openai's version. */
export function openaiVersion() {
  return JSON.parse(readFileSync(new URL('./node_modules/openai/package.json', import.meta.url), 'utf8')).version;
}

/** The LLM-call records of one call: [the instrumentation's span, anosys's own record]. */
export function llmRecords(records) {
  const llm = records.filter((r) => r.get('gen_ai.span.kind') === 'LLM');
  const describe = () => records.map((r) => `${r.get('name')} (${r.get('source')}, ${r.get('gen_ai.span.kind')})`).join(', ');
  const span = llm.filter((r) => r.get('source') === SCOPE);
  const ours = llm.filter((r) => r.get('source') !== SCOPE);
  assert.equal(span.length, 1, describe());
  assert.equal(ours.length, 1, describe());
  return [span[0], ours[0]];
}

/**
 * A user's span ('handle request', made with `tracer`) around an
 * anosysLogger function that makes the call `request` with a new question:
 * the ids of the user's span, the call's answer, the question and the
 * `count` records of the trace (at the stand-in of `env`).
 */
export async function inTree({ anosys, env, tracer }, request, count) {
  const agent = anosys.anosysLogger('agent')(async function agent(question) {
    return request(question);
  });
  const question = `hello ${randomUUID().slice(0, 10)}`;
  let user;
  let answer;
  await tracer.startActiveSpan('handle request', async (span) => {
    user = span.spanContext();
    try {
      answer = await agent(question);
    } finally {
      span.end();
    }
  });
  const records = await env.waitFor((r) => r.get('trace_id') === user.traceId, { count });
  assert.equal(records.length, count, records.map((r) => r.get('name')).join(', '));
  return { user, answer, question, records };
}
