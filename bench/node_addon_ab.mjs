// Two builds of the Node addon against each other: `recordOpenAICall` (a
// plain call recorded in one step) in a loop, CPU of the calling thread,
// the builds alternating in fresh processes so the machine's drift falls on
// both alike. No HTTP: the request and the reply are given as text.
//
//   node bench/node_addon_ab.mjs BEFORE.node AFTER.node [pairs=4]
//
// Prints, for a short chat with tool calls and for a chat carrying a 41 KB
// history, each pair's µs a call and the after/before ratio of the means.
// (Build the two addons with `node crates/anosys-node/scripts/build-native.mjs`
// on each commit and copy crates/anosys-node/anosys.node aside.)
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ROUNDS = 20;
const PER_ROUND = 500;

if (process.argv[2] === '--one') {
  // One measurement, in this process: the addon at argv[3], the call kind argv[4].
  const [addonPath, kind] = process.argv.slice(3);
  const dir = mkdtempSync(join(tmpdir(), 'anosys-addon-ab-'));
  process.env.ANOSYS_DB = join(dir, 'records.db');
  delete process.env.ANOSYS_API_KEY;
  delete process.env.ANOSYS_API_URL;
  const native = createRequire(import.meta.url)(resolve(addonPath));
  const replies = JSON.parse(readFileSync(join(here, '..', 'crates', 'anosys-cli', 'src', 'demo', 'replies.json'), 'utf8'));
  const reply = replies.chat_tools.body;
  const messages =
    kind === 'history'
      ? Array.from({ length: 60 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'Some earlier turn of the conversation, with a few words more. '.repeat(10) }))
      : [{ role: 'user', content: "What's the weather in Seattle and San Francisco today? é" }];
  const request = JSON.stringify({ model: 'gpt-4o-mini', messages });
  const url = 'http://127.0.0.1:9/v1/chat/completions';
  // The thread's CPU from schedstat, exact after a 1 ms sleep (it is
  // brought up to date when the thread is switched out).
  const cpu = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  const settle = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  for (let i = 0; i < 2000; i++) native.recordOpenAICall(url, request, 0.001, 200, reply);
  native.flushSync(30_000);
  let ns = 0;
  for (let round = 0; round < ROUNDS; round++) {
    settle();
    const before = cpu();
    for (let i = 0; i < PER_ROUND; i++) native.recordOpenAICall(url, request, 0.001, 200, reply);
    settle();
    ns += cpu() - before;
    // The records delivered between rounds, outside the timing.
    native.flushSync(30_000);
  }
  rmSync(dir, { recursive: true, force: true });
  console.log((ns / (ROUNDS * PER_ROUND) / 1000).toFixed(3));
  process.exit(0);
}

const [before, after, pairsArg] = process.argv.slice(2);
if (!before || !after) {
  console.error('usage: node bench/node_addon_ab.mjs BEFORE.node AFTER.node [pairs]');
  process.exit(2);
}
const pairs = Number(pairsArg ?? 4);
const one = (addon, kind) =>
  Number(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--one', addon, kind], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
for (const kind of ['short', 'history']) {
  const got = { before: [], after: [] };
  let lower = 0;
  for (let p = 0; p < pairs; p++) {
    const b = one(before, kind);
    const a = one(after, kind);
    got.before.push(b);
    got.after.push(a);
    if (a < b) lower++;
    console.log(`${kind} pair ${p + 1}: before ${b.toFixed(2)} us, after ${a.toFixed(2)} us`);
  }
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  console.log(`${kind}: before ${mean(got.before).toFixed(2)} us, after ${mean(got.after).toFixed(2)} us a call, ratio ${(mean(got.after) / mean(got.before)).toFixed(2)}x, after lower in ${lower} of ${pairs}`);
}
