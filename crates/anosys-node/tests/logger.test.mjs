// anosysLogger, anosysRawLogger, setupAPI and delivery, checked at the
// AnoSys stand-in.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { runProcess, setup } from './servers.mjs';

const THIS_FILE = fileURLToPath(import.meta.url);

let env;
let anosys;

before(async () => {
  env = await setup();
  anosys = env.anosys;
});

after(() => env.close());

const named = (name) => (r) => r.get('name') === name;

test('a sync function: stays sync, records inputs, output, caller and duration', async () => {
  const add = anosys.anosysLogger('math')(function addNumbers(a, b) {
    return a + b;
  });
  const callLine = new Error().stack.split('\n')[1].match(/:(\d+):/)[1] * 1 + 1;
  const result = add(2, 3);
  assert.equal(result, 5, 'the value itself, not a Promise');
  assert.equal(add.name, 'addNumbers');
  const r = await env.one(named('addNumbers'));
  assert.equal(r.must('source'), 'math');
  assert.deepEqual(r.json('llm_input') ?? r.json('input'), { args: [2, 3] });
  assert.equal(r.json('llm_output') ?? r.json('output'), 5);
  assert.equal(r.must('status_code'), 'OK');
  assert.ok(r.must('otel_duration_ms') >= 0);
  const caller = r.json('caller');
  assert.equal(caller.file, THIS_FILE);
  assert.equal(caller.line, callLine);
  assert.equal(r.must('code.file.path'), THIS_FILE);
});

test('this is preserved, for methods and constructors', async () => {
  const account = {
    balance: 10,
    deposit: anosys.anosysLogger('bank')(function deposit(n) {
      this.balance += n;
      return this.balance;
    }),
  };
  assert.equal(account.deposit(5), 15);
  assert.equal(account.balance, 15);
  class Point {
    constructor(x) {
      this.x = x;
    }
  }
  const LoggedPoint = anosys.anosysLogger('geo')(Point);
  const p = new LoggedPoint(4);
  assert.ok(p instanceof Point);
  assert.equal(p.x, 4);
  const r = await env.one(named('deposit'));
  assert.equal(r.json('llm_output') ?? r.json('output'), 15);
  await env.one(named('Point'));
});

test('a thrown error is recorded (name, message, stack) and re-thrown unchanged', async () => {
  class PaymentError extends Error {}
  const original = new PaymentError('card declined');
  const charge = anosys.anosysLogger('billing')(function charge() {
    throw original;
  });
  assert.throws(() => charge(), (e) => e === original);
  const r = await env.one(named('charge'));
  assert.equal(r.must('status_code'), 'ERROR');
  assert.equal(r.must('error_type'), 'PaymentError');
  assert.equal(r.must('error_message'), 'card declined');
  assert.ok(r.must('error_stack').includes('card declined'));
  assert.ok(r.must('error_stack').includes(THIS_FILE));

  const named2 = anosys.anosysLogger('billing')(function validate() {
    throw new RangeError('too big');
  });
  assert.throws(() => named2(), RangeError);
  const r2 = await env.one(named('validate'));
  assert.equal(r2.must('error_type'), 'RangeError');

  const odd = anosys.anosysLogger('billing')(function throwsAString() {
    throw 'plain string';
  });
  assert.throws(() => odd(), (e) => e === 'plain string');
  const r3 = await env.one(named('throwsAString'));
  assert.equal(r3.must('error_message'), 'plain string');
});

test('an async function: awaited value, rejection recorded and re-thrown, same promise', async () => {
  const fetchUser = anosys.anosysLogger('users')(async function fetchUser(id) {
    await new Promise((r) => setTimeout(r, 5));
    return { id, name: 'Ada' };
  });
  const promise = fetchUser(7);
  assert.ok(promise instanceof Promise);
  assert.deepEqual(await promise, { id: 7, name: 'Ada' });
  const r = await env.one(named('fetchUser'));
  assert.deepEqual(r.json('llm_output') ?? r.json('output'), { id: 7, name: 'Ada' });
  assert.ok(r.must('otel_duration_ms') >= 4);

  const failure = new Error('db down');
  const load = anosys.anosysLogger('users')(async function load() {
    await null;
    throw failure;
  });
  await assert.rejects(load(), (e) => e === failure);
  const r2 = await env.one(named('load'));
  assert.equal(r2.must('status_code'), 'ERROR');
  assert.equal(r2.must('error_message'), 'db down');
});

test('nested calls share a trace; children find their parent across awaits', async () => {
  const leaf = anosys.anosysLogger('tree')(function leaf(x) {
    return x * 2;
  });
  const branch = anosys.anosysLogger('tree')(async function branch(x) {
    await new Promise((r) => setTimeout(r, 2));
    return leaf(x) + leaf(x + 1);
  });
  const root = anosys.anosysLogger('tree')(async function root() {
    const [a, b] = await Promise.all([branch(1), branch(10)]);
    return a + b;
  });
  assert.equal(await root(), 6 + 42);
  const [rootRecord] = await env.waitFor(named('root'));
  const branches = await env.waitFor(named('branch'), { count: 2 });
  const leaves = await env.waitFor(named('leaf'), { count: 4 });
  for (const b of branches) {
    assert.equal(b.must('trace_id'), rootRecord.must('trace_id'));
    assert.equal(b.must('parent_id'), rootRecord.must('span_id'));
  }
  const branchSpans = new Set(branches.map((b) => b.must('span_id')));
  for (const l of leaves) {
    assert.equal(l.must('trace_id'), rootRecord.must('trace_id'));
    assert.ok(branchSpans.has(l.must('parent_id')));
  }
  assert.equal(rootRecord.get('parent_id') ?? null, null);
});

test('odd inputs and outputs become readable JSON, never an exception', async () => {
  const cyclic = { name: 'loop' };
  cyclic.self = cyclic;
  const weird = anosys.anosysLogger('odd')(function weird() {
    return {
      big: 2n ** 80n,
      small: 7n,
      nan: NaN,
      map: new Map([['a', 1]]),
      set: new Set([1, 2]),
      fn: function helper() {},
      bytes: Buffer.from('hi'),
      date: new Date(0),
      undef: undefined,
      sym: Symbol('s'),
      cyclic,
      error: new TypeError('inner'),
      get broken() {
        throw new Error('getter');
      },
    };
  });
  weird(cyclic, 1n);
  const r = await env.one(named('weird'));
  const out = r.json('llm_output') ?? r.json('output');
  assert.equal(out.big, (2n ** 80n).toString());
  assert.equal(out.small, 7);
  assert.equal(out.nan, 'NaN');
  assert.deepEqual(out.map, { a: 1 });
  assert.deepEqual(out.set, [1, 2]);
  assert.equal(out.fn, '[Function helper]');
  assert.ok(out.bytes.includes('2 bytes'));
  assert.equal(out.date, '1970-01-01T00:00:00.000Z');
  assert.equal(out.cyclic.self, '[Circular]');
  assert.equal(out.error.message, 'inner');
  assert.ok(out.broken.includes('getter threw'));
  const input = r.json('llm_input') ?? r.json('input');
  assert.equal(input.args[0].self, '[Circular]');
  assert.equal(input.args[1], 1);
});

test('decorator forms: no source, standard and legacy method decorators', async () => {
  const bare = anosys.anosysLogger(function bareFunction() {
    return 1;
  });
  assert.equal(bare(), 1);
  const r = await env.one(named('bareFunction'));
  assert.equal(r.must('source'), 'logger.test');

  // What TypeScript's standard decorators call: (method, context).
  const standard = anosys.anosysLogger('svc')(function () {
    return this.k;
  }, { kind: 'method', name: 'compute' });
  assert.equal(standard.call({ k: 3 }), 3);
  await env.one(named('compute'));

  // experimentalDecorators: (prototype, key, descriptor).
  const descriptor = { value: (x) => x + 1, writable: true, configurable: true };
  anosys.anosysLogger('svc')({}, 'legacyMethod', descriptor);
  assert.equal(descriptor.value(1), 2);
  await env.one(named('legacyMethod'));
  assert.throws(() => anosys.anosysLogger('svc')(42), TypeError);
});

test('anosysRawLogger sends each top-level key as its own column', async () => {
  assert.equal(anosys.anosysRawLogger({ event: 'user_action', action: 'button_click', user_id: '12345', count: 3, ok: true }), true);
  const r = await env.one((r) => r.get('event') === 'user_action');
  assert.equal(r.must('action'), 'button_click');
  assert.equal(r.must('count'), 3);
  assert.equal(r.must('ok'), true);
});

test('setupAPI: starting indices move the dynamic columns; bad settings are clear errors', async () => {
  assert.throws(() => anosys.setupAPI({ startingIndices: { colour: 3 } }), /starting_indices|colour/);
  assert.throws(() => anosys.setupAPI({ startingIndices: { number: -1 } }), /non-negative integer/);
  assert.throws(() => anosys.setupAPI({ path: 'not a url' }), /ANOSYS_API_URL|url|URL/);
  anosys.setupAPI({ path: `${env.backend.url}/log`, startingIndices: { string: 150, number: 50, bool: 20 } });
  anosys.anosysRawLogger({ marker: 'indices', custom_text: 'x', custom_number: 1.5, custom_flag: false });
  const r = await env.one((r) => r.get('marker') === 'indices');
  const columns = Object.values(r.mapping);
  assert.ok(columns.includes('cvs150'), columns.join(','));
  assert.ok(columns.includes('cvn50'), columns.join(','));
  assert.ok(columns.includes('cvb20'), columns.join(','));
  assert.equal(anosys.setupApi, anosys.setupAPI);
});

test('setBeforeSend: records changed, dropped, and a throwing callback contained', async () => {
  const before = anosys.counters();
  anosys.setBeforeSend((record) => {
    const action = record.attributes.action;
    if (action === 'drop') return null;
    if (action === 'explode') throw new Error('a broken callback');
    if (action === 'keep') return true;
    record.attributes.secret_note = '[masked]';
    record.attributes.team = 'search';
    return record;
  });
  try {
    assert.equal(anosys.anosysRawLogger({ marker: 'before-send', event: 'changed', secret_note: 'hunter2' }), true);
    assert.equal(anosys.anosysRawLogger({ marker: 'before-send', event: 'dropped', action: 'drop' }), false);
    assert.equal(anosys.anosysRawLogger({ marker: 'before-send', event: 'exploded', action: 'explode' }), false);
    assert.equal(anosys.anosysRawLogger({ marker: 'before-send', event: 'kept', action: 'keep' }), true);
    const logged = anosys.anosysLogger('before-send-fn')(function work(x) {
      return x * 2;
    });
    assert.equal(logged(21), 42);
    const found = await env.waitFor((r) => r.get('marker') === 'before-send', { count: 2 });
    assert.deepEqual(found.map((r) => r.get('event')).sort(), ['changed', 'kept']);
    const changed = found.find((r) => r.get('event') === 'changed');
    assert.equal(changed.must('secret_note'), '[masked]');
    assert.equal(changed.must('team'), 'search');
    const fn = await env.one((r) => r.get('source') === 'before-send-fn');
    assert.equal(fn.must('team'), 'search');
    const report = await anosys.flush({ timeoutMs: 5000 });
    assert.equal(report.filtered - (before.filtered ?? 0), 2);
  } finally {
    anosys.setBeforeSend(null);
  }
  assert.equal(anosys.anosysRawLogger({ marker: 'before-send-off', action: 'drop' }), true);
  await env.one((r) => r.get('marker') === 'before-send-off');
  assert.throws(() => anosys.setBeforeSend(42), /must be a function/);
});

test('flush resolves to the counters', async () => {
  anosys.anosysRawLogger({ event: 'counted' });
  const report = await anosys.flush({ timeoutMs: 5000 });
  assert.equal(report.completed, true);
  assert.equal(report.pending, 0);
  assert.ok(report.captured >= 1);
  assert.ok(report.delivered >= 1);
  assert.equal(typeof anosys.counters().dropped, 'number');
});

function runChild(source) {
  return runProcess(process.execPath, ['--input-type=module', '-e', source], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, ANOSYS_API_URL: `${env.backend.url}/log` },
    timeoutMs: 20_000,
  });
}

test('records are delivered when the process ends by itself (beforeExit) and through process.exit()', async () => {
  const natural = await runChild(`
    import { anosysLogger } from 'anosys';
    anosysLogger('child')(function naturalEnd() { return 'done'; })();
  `);
  assert.equal(natural.code, 0, natural.stderr);
  await env.one(named('naturalEnd'));

  const exited = await runChild(`
    import { anosysLogger, anosysRawLogger } from 'anosys';
    anosysLogger('child')(function beforeExitCall() { return 1; })();
    anosysRawLogger({ event: 'exiting' });
    process.exit(3);
  `);
  assert.equal(exited.code, 3, exited.stderr);
  await env.one(named('beforeExitCall'));
  await env.one((r) => r.get('event') === 'exiting');
});

test('generators: read to the end, left early, next/throw forwarded, errors', async () => {
  const count = anosys.anosysLogger('gen')(function* countTo(n) {
    for (let i = 1; i <= n; i++) yield i;
    return 'done';
  });
  assert.deepEqual([...count(3)], [1, 2, 3]);
  const full = await env.one(named('countTo'));
  assert.deepEqual(full.json('llm_output') ?? full.json('output'), { yielded: [1, 2, 3], returned: 'done' });
  assert.equal(full.must('status_code'), 'OK');

  const naturals = anosys.anosysLogger('gen')(function* naturals() {
    for (let i = 0; ; i++) yield i;
  });
  for (const i of naturals()) if (i === 2) break;
  const early = await env.one(named('naturals'));
  assert.equal(early.must('anosys.outcome'), 'cancelled');
  assert.deepEqual(early.json('llm_output') ?? early.json('output'), [0, 1, 2]);

  const echo = anosys.anosysLogger('gen')(function* echo() {
    let got = yield 'ready';
    for (;;) {
      try {
        got = yield `got ${got}`;
      } catch (error) {
        got = `caught ${error.message}`;
      }
    }
  });
  const g = echo();
  assert.equal(g.next().value, 'ready');
  assert.equal(g.next('a').value, 'got a');
  assert.equal(g.throw(new Error('x')).value, 'got caught x');
  g.return();
  const echoed = await env.one(named('echo'));
  assert.deepEqual(echoed.json('llm_output') ?? echoed.json('output'), ['ready', 'got a', 'got caught x']);

  const broken = anosys.anosysLogger('gen')(function* broken() {
    yield 1;
    throw new SyntaxError('bad token');
  });
  assert.throws(() => [...broken()], SyntaxError);
  const failed = await env.one(named('broken'));
  assert.equal(failed.must('error_type'), 'SyntaxError');
  assert.deepEqual(failed.json('llm_output') ?? failed.json('output'), [1]);
});

test('async generators, with children of each step', async () => {
  const child = anosys.anosysLogger('agen')(function pageChild(n) {
    return n * 10;
  });
  const pages = anosys.anosysLogger('agen')(async function* pages() {
    for (let i = 1; i <= 3; i++) {
      await new Promise((r) => setTimeout(r, 1));
      yield child(i);
    }
  });
  const seen = [];
  for await (const p of pages()) seen.push(p);
  assert.deepEqual(seen, [10, 20, 30]);
  const parent = await env.one(named('pages'));
  assert.deepEqual(parent.json('llm_output') ?? parent.json('output'), [10, 20, 30]);
  const children = await env.waitFor(named('pageChild'), { count: 3 });
  for (const c of children) assert.equal(c.must('parent_id'), parent.must('span_id'));

  const stream = anosys.anosysLogger('agen')(async function* ticker() {
    for (let i = 0; ; i++) yield i;
  });
  for await (const i of stream()) if (i === 1) break;
  const left = await env.one(named('ticker'));
  assert.equal(left.must('anosys.outcome'), 'cancelled');
  assert.deepEqual(left.json('llm_output') ?? left.json('output'), [0, 1]);
});
