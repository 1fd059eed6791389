// Shared by the tests of this folder.

import assert from 'node:assert/strict';
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
