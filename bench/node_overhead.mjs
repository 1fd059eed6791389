#!/usr/bin/env node
// Per-call cost of `client.chat.completions.create` as the caller sees it,
// against a local OpenAI-compatible server, in one run:
//
//   bare           the openai client (7.59, the current major), nothing installed
//   anosys         the same with this repository's package (`new AnosysOpenAILogger()`),
//                  posting each record to a local AnoSys stand-in (one POST per
//                  record, as the AnoSys API takes them)
//   anosys-local   the same, records written to the embedded JSON-lines sink
//                  instead (no network: like the in-memory span exporter below)
//   bare-v6        openai 6.30, nothing installed
//   otel           openai 6.30 with @opentelemetry/instrumentation-openai 0.21
//                  and the OpenTelemetry SDK's batch span processor
//   anosys-sdk-openai  the original npm package, if the registry has it
//
// @opentelemetry/instrumentation-openai (0.21 and 0.22, the latest) only
// instruments openai < 7, so it is measured on openai 6 against a bare
// openai 6 baseline; each ratio is to the bare client of the same openai
// version. The original `anosys-sdk-openai` npm package is measured when
// `npm install anosys-sdk-openai` succeeds; it was not on the registry when
// this was written, and the run says so instead of inventing a figure.
//
// Every variant runs in a fresh process (their patches cannot share one),
// in interleaved rounds; each process makes WARMUP calls, then times N
// calls one after another, plain and streamed. Figures are medians over
// rounds. Everything stays on 127.0.0.1: the upstream is `anosys
// demo-server` (recorded OpenAI replies), and records are posted to a local
// AnoSys stand-in in this process.
//
// Usage (from the repository root; installs into target/bench-node):
//
//   node bench/node_overhead.mjs                 # N=2000, 5 rounds
//   node bench/node_overhead.mjs --n 500 --rounds 3
//   # the in-process pairs (the goal's rows) in the first round only
//   # (bench/all.py does so)
//   node bench/node_overhead.mjs --n 500 --rounds 3 --in-process-runs 1
//   # also time the capture work of another build's addon (say, main's), in
//   # the same processes, for a before/after in one run:
//   node bench/node_overhead.mjs --baseline-native path/to/anosys.node

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const DIR = join(ROOT, 'target', 'bench-node');
const PACKAGES = [
  'openai7@npm:openai@7.59.0',
  'openai@6.30.1',
  '@opentelemetry/api@1.9.1',
  '@opentelemetry/sdk-trace-base@2.12.1',
  '@opentelemetry/instrumentation@0.223.0',
  '@opentelemetry/instrumentation-openai@0.21.0',
];
const SEED = 'anosys-sdk-openai';
// The long stream of the per-event figure: its content events this many times.
const LONG_REPEAT = 16;
const JSONL = join(ROOT, 'target', 'bench-anosys.jsonl');

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '200' },
    // calls the capture work alone is timed over, per round
    'capture-n': { type: 'string', default: '5000' },
    // rounds that also run the in-process pairs, from the first (0: every round)
    'in-process-runs': { type: 'string', default: '0' },
    'skip-setup': { type: 'boolean', default: false },
    'baseline-native': { type: 'string' },
    worker: { type: 'string' },
    upstream: { type: 'string' },
    backend: { type: 'string' },
  },
});
const N = Number(args.n);
const WARMUP = Number(args.warmup);
const CAPTURE_N = Number(args['capture-n']);

function run(cmd, argv, cwd) {
  const r = spawnSync(cmd, argv, { cwd, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status})`);
}

function setup() {
  mkdirSync(DIR, { recursive: true });
  writeFileSync(join(DIR, 'package.json'), JSON.stringify({ name: 'anosys-node-bench', private: true }));
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...PACKAGES, join(ROOT, 'crates', 'anosys-node')], DIR);
  const seed = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--no-save', SEED], { cwd: DIR, encoding: 'utf8' });
  if (seed.status !== 0) {
    console.error(`${SEED}: not installable from the npm registry (${(seed.stderr.match(/E\d{3}[^\n]*/) ?? ['failed'])[0].trim()}); left out.`);
  }
  run('npm', ['run', '--silent', 'build'], join(ROOT, 'crates', 'anosys-node'));
  run('cargo', ['build', '--release', '--quiet', '-p', 'anosys-cli'], ROOT);
}

// ---- worker: runs in target/bench-node, one variant per process ----------

/**
 * What the package adds to the event loop in a real call, in one process:
 * two openai 7.59 clients, one bare and one instrumented
 * (`instrumentOpenAI`), whose `fetch` hands back the upstream's reply at
 * once (fetched from it beforehand; no HTTP while timed), called in
 * alternating blocks (which goes first alternating too), so that this
 * machine's drift falls on both alike. CPU time of the event loop's
 * thread per call, for each block; the records are delivered to the
 * stand-in between pairs, outside the timing. Unlike the capture-alone
 * loop, this counts the JavaScript wrapper and the engine's work as they
 * run inside openai's own, with the caches that leaves them.
 */
async function inProcess(require) {
  process.env.ANOSYS_API_URL = args.backend;
  const anosys = await import(join(DIR, 'node_modules', 'anosys', 'index.js'));
  const OpenAI = (await import(require.resolve('openai7'))).default;
  const messages = [{ role: 'user', content: 'Say this is a test' }];
  // A chat that carries its history: 61 messages, about 41 KB of JSON.
  const history = [{ role: 'system', content: 'You are a helpful assistant. '.repeat(20) }];
  for (let i = 0; i < 60; i++) {
    const content = `Message number ${i} with some text about the weather and "quotes" and more text. `.repeat(8);
    history.push({ role: i % 2 ? 'assistant' : 'user', content });
  }
  const replies = {};
  for (const [kind, stream] of [['plain', false], ['stream', true]]) {
    const r = await fetch(`${args.upstream}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages, stream }),
    });
    replies[kind] = { body: await r.text(), type: r.headers.get('content-type') ?? 'application/json' };
  }
  replies.history = replies.plain;
  // A stream's events come one network chunk each, as a token stream's
  // do; the long stream repeats the content events (the first event and
  // the last three, usage and [DONE] among them, once).
  const eventsOf = (body) => body.split(/(?<=\n\n)/).filter((e) => e.trim());
  const short = eventsOf(replies.stream.body);
  const long = [short[0], ...Array.from({ length: LONG_REPEAT }, () => short.slice(1, -3)).flat(), ...short.slice(-3)];
  const utf8 = new TextEncoder();
  replies.stream.chunks = short.map((e) => utf8.encode(e));
  replies.long = { type: replies.stream.type, chunks: long.map((e) => utf8.encode(e)) };
  const dataOf = (events) => events.map((e) => e.replace(/^data: /, '').trim()).filter((d) => d !== '[DONE]');
  const counts = { stream: dataOf(short).length, long: dataOf(long).length };
  let kind = 'plain';
  const canned = async () => {
    const { body, chunks, type } = replies[kind];
    if (chunks === undefined) return new Response(body, { status: 200, headers: { 'content-type': type } });
    let i = 0;
    const stream = new ReadableStream({
      pull(controller) {
        if (i < chunks.length) controller.enqueue(chunks[i++]);
        else controller.close();
      },
    });
    return new Response(stream, { status: 200, headers: { 'content-type': type } });
  };
  const options = { apiKey: 'sk-bench', baseURL: `${args.upstream}/v1`, maxRetries: 0, fetch: canned };
  const clients = { bare: new OpenAI(options), anosys: anosys.instrumentOpenAI(new OpenAI(options)) };
  const call = {
    plain: (client) => client.chat.completions.create({ model: 'gpt-4o-mini', messages }),
    history: (client) => client.chat.completions.create({ model: 'gpt-4o-mini', messages: history }),
    stream: async (client) => {
      for await (const _ of await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true }));
    },
  };
  call.long = call.stream;
  const threadCpu = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  const settle = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  const block = async (which, n) => {
    settle();
    const cpu = threadCpu();
    for (let i = 0; i < n; i++) await call[kind](clients[which]);
    settle();
    return (threadCpu() - cpu) / 1000 / n;
  };
  const BLOCK = 200;
  const ROUNDS = 24;
  // The long stream's blocks hold as many events as the short stream's
  // (about a tenth of the calls): its figure is read a share for each
  // event more, which divides its spread alike.
  const calls = { plain: BLOCK, stream: BLOCK, history: BLOCK, long: Math.max(8, Math.floor((BLOCK * counts.stream) / counts.long)) };
  const out = {};
  for (kind of ['plain', 'stream', 'history', 'long']) {
    const n = calls[kind];
    for (let i = 0; i < 3; i++) for (const which of ['bare', 'anosys']) await block(which, n);
    await anosys.flush({ timeoutMs: 30_000 });
    const bare = [];
    const added = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? ['bare', 'anosys'] : ['anosys', 'bare'];
      const t = {};
      for (const which of order) t[which] = await block(which, n);
      bare.push(t.bare);
      added.push(t.anosys - t.bare);
      await anosys.flush({ timeoutMs: 30_000 });
    }
    const sorted = [...added].sort((a, b) => a - b);
    out[kind] = { bare_us: median(bare), added_us: median(added), lo: sorted[Math.floor(ROUNDS / 4)], hi: sorted[Math.floor((3 * ROUNDS) / 4)], calls_a_block: n };
  }
  // Per stream event: the long stream's added work less the short one's,
  // a share for each event more; against JSON.parse of the events' data
  // (what openai itself does with each), timed here.
  const data = dataOf(long);
  const parse = [];
  for (let round = 0; round < 9; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < 2_000; i++) for (const d of data) JSON.parse(d);
    parse.push(Number(process.hrtime.bigint() - started) / (2_000 * data.length));
  }
  out.per_event = {
    added_ns: ((out.long.added_us - out.stream.added_us) * 1000) / (counts.long - counts.stream),
    parse_ns: median(parse),
    events: [counts.stream, counts.long],
  };
  out.delivered = (await anosys.flush({ timeoutMs: 30_000 })).delivered;
  console.log(JSON.stringify(out));
}

async function worker(variant) {
  const require = createRequire(join(DIR, 'index.js'));
  if (variant === 'in-process') return inProcess(require);
  let OpenAI;
  let spans;
  let anosys;
  if (variant === 'anosys' || variant === 'anosys-local') {
    if (variant === 'anosys') {
      process.env.ANOSYS_API_URL = args.backend;
    } else {
      process.env.ANOSYS_SINKS = 'jsonl';
      process.env.ANOSYS_JSONL_PATH = JSONL;
    }
    anosys = await import(join(DIR, 'node_modules', 'anosys', 'index.js'));
    OpenAI = (await import(require.resolve('openai7'))).default;
    if (!new anosys.AnosysOpenAILogger({ openai: OpenAI }).instrumented) throw new Error('anosys did not instrument openai');
  } else if (variant === 'otel') {
    process.env.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = 'true';
    const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base');
    const { trace } = require('@opentelemetry/api');
    const { registerInstrumentations } = require('@opentelemetry/instrumentation');
    const { OpenAIInstrumentation } = require('@opentelemetry/instrumentation-openai');
    spans = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spans)] });
    trace.setGlobalTracerProvider(provider);
    registerInstrumentations({ instrumentations: [new OpenAIInstrumentation()], tracerProvider: provider });
    OpenAI = require('openai');
    spans.provider = provider;
  } else if (variant === SEED) {
    const seed = await import(require.resolve(SEED));
    process.env.ANOSYS_API_URL = args.backend;
    new seed.AnosysOpenAILogger();
    OpenAI = require('openai7');
  } else if (variant === 'bare-v6') {
    OpenAI = require('openai');
  } else {
    OpenAI = (await import(require.resolve('openai7'))).default;
  }

  const client = new OpenAI({ apiKey: 'sk-bench', baseURL: `${args.upstream}/v1`, maxRetries: 0 });
  const messages = [{ role: 'user', content: 'Say this is a test' }];
  const plain = () => client.chat.completions.create({ model: 'gpt-4o-mini', messages });
  const streamed = async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true });
    for await (const _ of stream);
  };
  const out = {};
  for (const [name, fn] of [['plain', plain], ['stream', streamed]]) {
    for (let i = 0; i < WARMUP; i++) await fn();
    const times = [];
    const deadline = Date.now() + 120_000;
    const cpu = process.cpuUsage();
    for (let i = 0; i < N && Date.now() < deadline; i++) {
      const t = process.hrtime.bigint();
      await fn();
      times.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    const used = process.cpuUsage(cpu);
    times.sort((a, b) => a - b);
    out[name] = { median_us: times[times.length >> 1], cpu_us: (used.user + used.system) / times.length, calls: times.length };
  }
  if (variant === 'anosys') {
    // The capture work alone, no HTTP: what a plain call hands the addon.
    const reply = await plain();
    const load = createRequire(import.meta.url);
    const native = load(join(DIR, 'node_modules', 'anosys', 'anosys.node'));
    const url = `${args.upstream}/v1/chat/completions`;
    const request = { model: 'gpt-4o-mini', messages };
    // Records delivered before and after, so that a background backlog of
    // one measurement does not land in the next.
    // CPU time of the event loop's thread alone (the main thread's
    // schedstat, in ns): what the engine's threads do (and other processes
    // on the machine) does not count.
    const threadCpu = () => {
      try {
        return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        return NaN;
      }
    };
    // The schedstat figure of a running thread is brought up to date only
    // when it is switched out (at worst a scheduler tick, 4 ms, late): a
    // 1 ms sleep before each reading makes it exact.
    const settle = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    // CAPTURE_N calls in runs of at most 1,000 (what the delivery queue
    // holds), the records delivered after each run, outside the timing.
    // What a plain call hands the addon: one recordOpenAICall (since
    // 63661529; an addon without it: OpenAICall start + finish), with
    // JSON.stringify of the request and the reply.
    const recordOne = (addon) =>
      typeof addon.recordOpenAICall === 'function'
        ? () => addon.recordOpenAICall(url, JSON.stringify(request), 0.001, 200, JSON.stringify(reply))
        : () => new addon.OpenAICall(url, JSON.stringify(request)).finish(200, JSON.stringify(reply));
    const captureLoop = (addon) => {
      const record = recordOne(addon);
      for (let i = 0; i < Math.min(CAPTURE_N, 200); i++) record();
      addon.flushSync(30_000);
      let wall = 0n;
      let cpuNs = 0;
      for (let left = CAPTURE_N; left > 0; left -= 1000) {
        const run = Math.min(left, 1000);
        settle();
        const cpu = threadCpu();
        const t = process.hrtime.bigint();
        for (let i = 0; i < run; i++) record();
        wall += process.hrtime.bigint() - t;
        settle();
        cpuNs += threadCpu() - cpu;
        addon.flushSync(30_000);
      }
      return [Number(wall) / 1000 / CAPTURE_N, cpuNs / 1000 / CAPTURE_N];
    };
    if (args['baseline-native']) [out.capture_baseline_us, out.capture_baseline_cpu_us] = captureLoop(load(args['baseline-native']));
    [out.capture_us, out.capture_cpu_us] = captureLoop(native);
    out.delivered = (await anosys.flush({ timeoutMs: 30_000 })).delivered;
  }
  if (spans) {
    await spans.provider.forceFlush();
    out.spans = spans.getFinishedSpans().length;
  }
  // The process's peak resident memory, and its transparent huge pages now.
  out.peak_kb = Number(readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+)/)?.[1] ?? NaN);
  out.huge_kb = Number(readFileSync('/proc/self/smaps_rollup', 'utf8').match(/AnonHugePages:\s+(\d+)/)?.[1] ?? NaN);
  console.log(JSON.stringify(out));
}

// ---- driver ----------------------------------------------------------------

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function main() {
  if (!args['skip-setup']) setup();
  const variants = ['bare', 'anosys', 'anosys-local', 'bare-v6', 'otel'];
  if (existsSync(join(DIR, 'node_modules', SEED))) variants.push(SEED);

  let received = 0;
  const collector = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received += 1;
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
  });
  await new Promise((r) => collector.listen(0, '127.0.0.1', r));
  const backend = `http://127.0.0.1:${collector.address().port}/log`;

  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const p = probe.address().port;
      probe.close(() => resolve(p));
    });
  });
  const upstream = `http://127.0.0.1:${port}`;
  const server = spawn(join(ROOT, 'target', 'release', 'anosys'), ['demo-server', '--listen', `127.0.0.1:${port}`], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`${upstream}/v1/models`).then(() => true, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const results = Object.fromEntries(variants.map((v) => [v, { plain: [], stream: [], memory: [] }]));
    const capture = [];
    const captureBase = [];
    const inProcessRuns = [];
    const runWorker = (v) => {
      const env = { ...process.env, ANOSYS_DB: join(ROOT, 'target', 'bench-anosys.db') };
      delete env.ANOSYS_API_KEY;
      return new Promise((resolve, reject) => {
        const baseline = args['baseline-native'] ? ['--baseline-native', resolvePath(args['baseline-native'])] : [];
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--worker', v, '--upstream', upstream, '--backend', backend, '--n', String(N), '--warmup', String(WARMUP), '--capture-n', String(CAPTURE_N), ...baseline], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          if (code !== 0) reject(new Error(`${v} failed:\n${stderr.slice(-3000)}`));
          else resolve(JSON.parse(stdout.trim().split('\n').pop()));
        });
      });
    };
    const inProcessRounds = Number(args['in-process-runs']) || Number(args.rounds);
    for (let round = 1; round <= Number(args.rounds); round++) {
      if (round <= inProcessRounds) {
        const inProc = await runWorker('in-process');
        inProcessRuns.push(inProc);
        console.error(
          `round ${round} in-process: the event loop's CPU a call, bare / added by anosys: plain ${inProc.plain.bare_us.toFixed(1)} / ${inProc.plain.added_us.toFixed(1)} us` +
            `, stream ${inProc.stream.bare_us.toFixed(1)} / ${inProc.stream.added_us.toFixed(1)} us` +
            `, 41 KB history ${inProc.history.bare_us.toFixed(1)} / ${inProc.history.added_us.toFixed(1)} us, delivered ${inProc.delivered}`,
        );
      }
      for (const v of variants) {
        const got = await runWorker(v);
        for (const kind of ['plain', 'stream']) results[v][kind].push([got[kind].median_us, got[kind].cpu_us]);
        results[v].memory.push([got.peak_kb, got.huge_kb]);
        if (got.capture_us !== undefined) capture.push([got.capture_us, got.capture_cpu_us]);
        if (got.capture_baseline_us !== undefined) captureBase.push([got.capture_baseline_us, got.capture_baseline_cpu_us]);
        let extra = got.capture_us !== undefined ? `, capture alone ${got.capture_us.toFixed(1)} us (thread cpu ${got.capture_cpu_us.toFixed(1)}), delivered ${got.delivered}` : got.spans !== undefined ? `, spans ${got.spans}` : '';
        if (got.capture_baseline_us !== undefined) extra += `, baseline build ${got.capture_baseline_us.toFixed(1)} us (thread cpu ${got.capture_baseline_cpu_us.toFixed(1)})`;
        console.error(
          `round ${round} ${v.padEnd(18)} plain ${got.plain.median_us.toFixed(1).padStart(8)} us (cpu ${got.plain.cpu_us.toFixed(1).padStart(7)})` +
            `  stream ${got.stream.median_us.toFixed(1).padStart(8)} us (cpu ${got.stream.cpu_us.toFixed(1).padStart(7)})${extra}`,
        );
      }
    }
    const base = { bare: 'bare', anosys: 'bare', 'anosys-local': 'bare', [SEED]: 'bare', 'bare-v6': 'bare-v6', otel: 'bare-v6' };
    const med = (v, kind, i) => median(results[v][kind].map((x) => x[i]));
    console.log(`\nper call, median over ${args.rounds} rounds of ${N} calls; ratio to the bare client of the same openai version, same run`);
    console.log('wall: the caller\'s median latency; cpu: CPU time of the calling process (all its threads) per call');
    console.log(`${'variant'.padEnd(18)} ${'baseline'.padEnd(8)} ${'plain wall'.padStart(10)} ${'ratio'.padStart(6)} ${'cpu'.padStart(7)} ${'ratio'.padStart(6)}   ${'stream wall'.padStart(11)} ${'ratio'.padStart(6)} ${'cpu'.padStart(7)} ${'ratio'.padStart(6)}`);
    for (const v of variants) {
      const cells = ['plain', 'stream'].map((kind) => {
        const wall = med(v, kind, 0);
        const cpu = med(v, kind, 1);
        return `${wall.toFixed(1).padStart(kind === 'plain' ? 10 : 11)} ${(wall / med(base[v], kind, 0)).toFixed(2).padStart(6)} ${cpu.toFixed(1).padStart(7)} ${(cpu / med(base[v], kind, 1)).toFixed(2).padStart(6)}`;
      });
      console.log(`${v.padEnd(18)} ${base[v].padEnd(8)} ${cells[0]}   ${cells[1]}`);
    }
    // Peak RSS of each variant's process (its calls, and for anosys the
    // capture-alone loop too), median over rounds, against the bare client
    // of the same openai version; and the transparent huge pages it held.
    console.log('\npeak RSS of the process, median over rounds (ratio to the bare client); huge pages resident at the end');
    for (const v of variants) {
      const peak = (name) => median(results[name].memory.map((m) => m[0])) / 1024;
      const huge = median(results[v].memory.map((m) => m[1])) / 1024;
      console.log(`${v.padEnd(18)} ${peak(v).toFixed(1).padStart(7)} MiB ${(peak(v) / peak(base[v])).toFixed(2).padStart(6)}   huge pages ${huge.toFixed(1)} MiB`);
    }
    if (!variants.includes(SEED)) console.log(`\n${SEED}: not available from the npm registry; not measured`);
    const bare = med('bare', 'plain', 0);
    const line = (what, xs) => {
      const wall = median(xs.map((x) => x[0]));
      const cpu = median(xs.map((x) => x[1]));
      console.log(`${what}: ${wall.toFixed(1)} us per call (${((wall / bare) * 100).toFixed(1)}% of a bare call), CPU of the event loop's thread ${cpu.toFixed(1)} us (${((cpu / bare) * 100).toFixed(1)}%)`);
    };
    console.log('');
    // What the package adds to the event loop in a real call (see
    // inProcess), median over rounds of each round's median.
    for (const kind of ['plain', 'stream', 'history', 'long']) {
      const pick = (key) => median(inProcessRuns.map((r) => r[kind][key]));
      const what = { history: 'chat call with a 41 KB history, not streamed', long: `stream call of ${inProcessRuns[0].per_event.events[1]} events` }[kind] ?? `${kind} call`;
      console.log(
        `anosys on the event loop in a real ${what} (instrumented and bare openai 7.59 clients interleaved in one process, median of ${inProcessRuns.length} such runs, the reply from a canned fetch, no HTTP): ` +
          `${pick('added_us').toFixed(1)} us added to the bare client's ${pick('bare_us').toFixed(1)} us (middle half of the pairs ${pick('lo').toFixed(1)} to ${pick('hi').toFixed(1)}), CPU of the event loop's thread`,
      );
    }
    {
      const pick = (key) => median(inProcessRuns.map((r) => r.per_event[key]));
      const [few, many] = inProcessRuns[0].per_event.events;
      const [shortBlock, longBlock] = [inProcessRuns[0].stream.calls_a_block, inProcessRuns[0].long.calls_a_block];
      console.log(
        `anosys on the event loop per stream event (real stream calls of ${few} and ${many} events, one network chunk each, in blocks of ${shortBlock} and ${longBlock} calls, the difference a share for each event more): ` +
          `${pick('added_ns').toFixed(0)} ns against JSON.parse of the event's data ${pick('parse_ns').toFixed(0)} ns`,
      );
    }
    line('anosys capture work alone (one-step record of a plain call, JSON.stringify of the request and the reply included, no HTTP)', capture);
    if (captureBase.length) line(`the baseline build (${args['baseline-native']})`, captureBase);
    console.log(`AnoSys stand-in received ${received} POSTs`);
  } finally {
    server.kill();
    collector.close();
    rmSync(JSONL, { force: true });
  }
}

if (args.worker) {
  await worker(args.worker);
} else {
  await main();
}
