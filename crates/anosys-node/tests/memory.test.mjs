// The addon's memory in the application's process: its allocator (mimalloc,
// built with `no_thp`) never asks for transparent huge pages, and the
// process's own THP setting is left as the application had it.
//
// Before, mimalloc `madvise`d every region it mapped for huge pages: a
// process capturing 20,000 calls held 55-60 MiB of 2 MiB pages and its RSS
// was 21 MiB higher for the same work (99 against 120 MiB; the ended calls'
// own memory, now a pointer each, took 22 MiB more until V8 collected
// them: 77 MiB now; see the engine's `a_call_held_by_a_binding_is_small`).
// bench/node_overhead.mjs reports each variant's peak RSS.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { runProcess } from './servers.mjs';

const packageDir = dirname(createRequire(import.meta.url).resolve('anosys/package.json'));

/** The system's THP mode (the bracketed word), or undefined off Linux. */
function thpMode() {
  try {
    return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').match(/\[(\w+)\]/)?.[1];
  } catch {
    return undefined;
  }
}

test('capturing calls makes no huge pages resident and leaves the process THP setting alone', { skip: process.platform !== 'linux' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'anosys-node-memory-'));
  try {
    // 20,000 chat calls captured through the addon, a reply of about 1 KB
    // each, records written to a JSON-lines file; then what the process
    // holds.
    const source = `
      import { readFileSync } from 'node:fs';
      const status = () => readFileSync('/proc/self/status', 'utf8');
      const thpBefore = status().match(/THP_enabled:\\s+(\\d)/)?.[1];
      const { default: native } = await import(${JSON.stringify(pathToFileURL(join(packageDir, 'lib', 'native.js')).href)});
      const request = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say this is a test' }] });
      const reply = JSON.stringify({
        id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini-2024-07-18',
        choices: [{ index: 0, message: { role: 'assistant', content: 'This is a test. '.repeat(50) }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 12, completion_tokens: 250, total_tokens: 262 },
      });
      for (let i = 0; i < 20; i++) {
        for (let j = 0; j < 1000; j++) new native.OpenAICall('http://127.0.0.1:9/v1/chat/completions', request).finish(200, reply);
        native.flushSync(30000);
      }
      const counters = native.counters();
      const huge = Number(readFileSync('/proc/self/smaps_rollup', 'utf8').match(/AnonHugePages:\\s+(\\d+)/)?.[1] ?? 0);
      console.log(JSON.stringify({ thpBefore, thpAfter: status().match(/THP_enabled:\\s+(\\d)/)?.[1], huge, counters }));
    `;
    const run = await runProcess(process.execPath, ['--input-type=module', '-e', source], {
      env: { ...process.env, ANOSYS_SINKS: 'jsonl', ANOSYS_JSONL_PATH: join(dir, 'records.jsonl'), ANOSYS_API_KEY: '' },
      timeoutMs: 120_000,
    });
    assert.equal(run.code, 0, run.output);
    const got = JSON.parse(run.stdout.trim().split('\n').pop());
    // Every call captured and written.
    assert.equal(got.counters.captured, 20_000, run.output);
    assert.equal(got.counters.delivered, 20_000, run.output);
    assert.equal(readFileSync(join(dir, 'records.jsonl'), 'utf8').trim().split('\n').length, 20_000);
    // The process's THP setting is the application's: the addon did not
    // turn it off for everyone (prctl PR_SET_THP_DISABLE).
    if (got.thpBefore !== undefined) assert.equal(got.thpAfter, got.thpBefore);
    // With THP on request only ("madvise", this machine's and Debian's
    // default) nothing in the process asks for huge pages, so none are
    // resident. ("always" hands them out without asking; "never" has none.)
    if (thpMode() === 'madvise') assert.equal(got.huge, 0, `AnonHugePages ${got.huge} kB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
