// The original AnoSys Node package (`anosys-logger-4-openai`): its five
// public names, imported by name from this package, used as its README
// uses them (the code is copied from there where it can be), each record
// checked at the AnoSys stand-in. Where ours differs on purpose (a sync
// function stays sync, anosysRawLogger answers at once, instrumentOpenAI
// returns the client, setupAPI() takes no argument), the test says so; the
// README's "Moving from the original package" lists the differences.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { instrumentOpenAI, anosysLogger, anosysRawLogger, setupAPI, setupDecorator } from 'anosys';

import { Backend, setup } from './servers.mjs';

let env;

before(async () => {
  env = await setup();
});

after(() => env.close());

/** A client as the original README makes one, against the loopback upstream. */
const newClient = () => new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });

/** Records whose body mentions `marker` anywhere. */
const mentions = (marker) => (r) => JSON.stringify(r.body).includes(marker);

const input = (r) => r.json('llm_input') ?? r.json('input');
const output = (r) => r.json('llm_output') ?? r.json('output');

test('the five names are there, setupDecorator is setupAPI', () => {
  for (const f of [instrumentOpenAI, anosysLogger, anosysRawLogger, setupAPI, setupDecorator]) {
    assert.equal(typeof f, 'function');
  }
  assert.equal(setupDecorator, setupAPI);
});

test('instrumentOpenAI(client): a chat completion, as in the Quick Start', async () => {
  const marker = randomUUID();
  // Create OpenAI client
  const client = newClient();

  // Instrument it (do this once)
  const returned = instrumentOpenAI(client);
  assert.equal(returned, client, 'ours returns the client (the original returned undefined)');

  // Use OpenAI as normal - all calls are automatically logged
  const response = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: `Explain why AnoSys is great for AI observability ${marker}` },
    ],
  });
  assert.equal(response.choices[0].message.content, 'This is a test.');

  const r = await env.one(mentions(marker));
  assert.equal(r.must('gen_ai.operation.name'), 'chat');
  assert.equal(r.must('gen_ai.request.model'), 'gpt-4o-mini');
  assert.equal(r.must('gen_ai.response.id'), response.id);
  assert.equal(r.must('gen_ai.usage.input_tokens'), response.usage.prompt_tokens);
  assert.equal(r.must('gen_ai.usage.output_tokens'), response.usage.completion_tokens);
  assert.deepEqual(r.json('gen_ai.response.finish_reasons'), ['stop']);
  assert.equal(r.must('is_streaming'), false);
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, 'This is a test.');
  assert.ok(JSON.stringify(r.json('gen_ai.input.messages')).includes(marker));
  assert.equal(r.must('status_code'), 'OK');
});

test('instrumentOpenAI(client): a stream read with for await is recorded aggregated', async () => {
  const marker = randomUUID();
  const client = newClient();
  instrumentOpenAI(client);

  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `Write a haiku about AI ${marker}` }],
    stream: true,
  });

  let text = '';
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) {
      text += chunk.choices[0].delta.content; // the README writes it to process.stdout
    }
  }
  assert.ok(text.length > 0);

  const r = await env.one(mentions(marker));
  assert.equal(r.must('is_streaming'), true);
  assert.equal(r.must('gen_ai.operation.name'), 'chat');
  assert.equal(r.json('gen_ai.output.messages')[0].parts[0].content, text, 'all chunks combined');
  assert.deepEqual(r.json('gen_ai.response.finish_reasons'), ['stop']);
  assert.equal(r.must('status_code'), 'OK');
});

test('instrumentOpenAI(client): embeddings.create and images.generate', async () => {
  const marker = randomUUID();
  const client = newClient();
  instrumentOpenAI(client);

  const embedding = await client.embeddings.create({ model: 'text-embedding-3-small', input: `embed this ${marker}`, encoding_format: 'float' });
  const image = await client.images.generate({ model: 'gpt-image-1', prompt: `a small cat ${marker}`, size: '1024x1024' });
  assert.ok(image.data[0].url);

  const [e] = await env.waitFor((r) => mentions(marker)(r) && r.get('gen_ai.operation.name') === 'embeddings');
  assert.equal(e.must('gen_ai.request.model'), 'text-embedding-3-small');
  assert.equal(e.must('gen_ai.usage.input_tokens'), embedding.usage.prompt_tokens);
  assert.equal(e.must('gen_ai.embeddings.dimension.count'), embedding.data[0].embedding.length);
  assert.equal(e.must('status_code'), 'OK');

  const [i] = await env.waitFor((r) => mentions(marker)(r) && r.get('gen_ai.request.model') === 'gpt-image-1');
  assert.equal(i.must('gen_ai.operation.name'), 'generate_content');
  assert.equal(i.must('status_code'), 'OK');
});

test('anosysLogger: a sync function, as in "Custom Function Decorators"', async () => {
  // Setup once (optional, uses ANOSYS_API_KEY by default)
  setupAPI(); // the original threw a TypeError here (it destructured its missing argument)

  // Decorate a sync function
  let calculateScore = (data) => {
    return data.reduce((a, b) => a + b, 0) / data.length;
  };
  calculateScore = anosysLogger('my_app.calculations')(calculateScore);

  // Function calls are automatically logged
  const result = calculateScore([85, 90, 78, 92]);
  assert.equal(result, 86.25, 'ours stays sync: the value itself (the original returned a Promise)');
  assert.equal(await calculateScore([85, 90, 78, 92]), 86.25, 'await works as with the original');
  assert.equal(calculateScore.name, 'calculateScore');

  const records = await env.waitFor((r) => r.get('source') === 'my_app.calculations', { count: 2 });
  for (const r of records) {
    assert.equal(r.must('name'), 'calculateScore');
    assert.deepEqual(input(r), { args: [[85, 90, 78, 92]] });
    assert.equal(output(r), 86.25);
    assert.equal(r.must('status_code'), 'OK');
  }

  // A decorated version with a new name, as the README's note on `const` shows.
  const multiply = (a, b) => a * b;
  const loggedMultiply = anosysLogger('math.multiply')(multiply);
  assert.equal(loggedMultiply(5, 3), 15);
  assert.equal(loggedMultiply.name, 'multiply');
  const m = await env.one((r) => r.get('source') === 'math.multiply');
  assert.equal(output(m), 15);
});

test('anosysLogger: an async function, as in "Async Functions"', async () => {
  const marker = randomUUID();
  let fetchData = async (url) => {
    const response = await fetch(url);
    return response.json();
  };
  fetchData = anosysLogger('my_app.api_calls')(fetchData);
  assert.equal(fetchData.name, 'fetchData');

  // Async calls are also logged (the upstream stand-in answers any path with JSON)
  const data = await fetchData(`${env.upstream.url}/data?marker=${marker}`);
  assert.equal(data.error.code, 'unknown_url');

  const r = await env.one((r) => r.get('source') === 'my_app.api_calls' && mentions(marker)(r));
  assert.equal(r.must('name'), 'fetchData');
  assert.deepEqual(input(r), { args: [`${env.upstream.url}/data?marker=${marker}`] });
  assert.deepEqual(output(r), data);
  assert.equal(r.must('status_code'), 'OK');
});

test('anosysLogger: an async function that throws, as in "Error Handling"', async () => {
  const loggedFunction = anosysLogger('my_app.risky')(async () => {
    throw new Error('Something went wrong');
  });

  let caught;
  try {
    await loggedFunction();
  } catch (error) {
    // Error is still logged to AnoSys with:
    // - Error type
    // - Error message
    // - Full stack trace
    caught = error;
  }
  assert.ok(caught instanceof Error);
  assert.equal(caught.message, 'Something went wrong');

  const r = await env.one((r) => r.get('source') === 'my_app.risky');
  assert.equal(r.must('name'), 'anonymous', 'as the original named an arrow function');
  assert.equal(r.must('status_code'), 'ERROR');
  assert.equal(r.must('error_type'), 'Error');
  assert.equal(r.must('error_message'), 'Something went wrong');
  assert.equal(r.must('error_stack'), caught.stack, 'the very error, re-thrown unchanged');
});

test('anosysLogger: the TypeScript example, and the same error object re-thrown', async () => {
  const calculateScore = anosysLogger('app.calc')((data) => {
    return data.reduce((a, b) => a + b, 0) / data.length;
  });
  assert.equal(calculateScore([1, 2, 3]), 2);
  const r = await env.one((r) => r.get('source') === 'app.calc');
  assert.equal(output(r), 2);

  const failure = new TypeError('bad input');
  const check = anosysLogger('app.check')(async function check() {
    throw failure;
  });
  await assert.rejects(check(), (e) => e === failure);
  const c = await env.one((r) => r.get('source') === 'app.check');
  assert.equal(c.must('name'), 'check');
  assert.equal(c.must('error_type'), 'TypeError');
});

test('anosysRawLogger: await it, as in "Raw Logger"; each key is a column', async () => {
  const marker = randomUUID();
  const timestamp = new Date().toISOString();
  // Log any custom data
  const answer = await anosysRawLogger({
    event: 'user_action',
    action: 'button_click',
    timestamp,
    user_id: '12345',
    marker,
  });
  assert.equal(answer, true, 'ours: true, queued (the original resolved to undefined)');

  const r = await env.one((r) => r.get('marker') === marker);
  assert.equal(r.must('event'), 'user_action');
  assert.equal(r.must('action'), 'button_click');
  assert.equal(r.must('timestamp'), timestamp);
  assert.equal(r.must('user_id'), '12345');
});

test('setupAPI, as in "Custom Configuration": a custom endpoint, then custom starting indices', async () => {
  const custom = await Backend.start();
  try {
    // Use a custom endpoint (advanced)
    setupAPI({ path: `${custom.url}/custom-endpoint` });
    const first = randomUUID();
    await anosysRawLogger({ marker: first, event: 'to_the_custom_endpoint' });
    const [r] = await custom.waitFor((r) => r.get('marker') === first, { flush: env.anosys.flush });
    assert.equal(r.must('event'), 'to_the_custom_endpoint');
    assert.equal(env.backend.records().filter((r) => r.get('marker') === first).length, 0);

    // Or with custom index starting points (rarely needed)
    setupAPI({
      startingIndices: {
        string: 200,
        number: 10,
        bool: 5,
      },
    });
    // Ours: each call starts from the environment plus what it is given, so
    // this one sends to ANOSYS_API_URL (the main stand-in) again.
    const second = randomUUID();
    anosysRawLogger({ marker: second, moved_text: 'x', moved_number: 7, moved_flag: true });
    const moved = await env.one(mentions(second));
    assert.equal(moved.mapping.moved_number, 'cvn10');
    assert.equal(moved.mapping.moved_flag, 'cvb5');
    assert.equal(moved.must('moved_number'), 7);
    assert.equal(moved.must('moved_flag'), true);
    // Ours: cvs199 and cvs200 are the raw and source columns, so a string
    // index of 200 leaves no string columns (the original gave cvs200 to a
    // key, over the source column): string keys go into `otel_attributes`.
    assert.equal(moved.mapping.moved_text, undefined);
    assert.deepEqual(moved.json('otel_attributes'), { marker: second, moved_text: 'x' });

    // A string index below 199 moves the string columns.
    setupAPI({ startingIndices: { string: 150, number: 10, bool: 5 } });
    const third = randomUUID();
    anosysRawLogger({ marker: third, moved_text: 'x' });
    const strings = await env.one((r) => r.get('marker') === third);
    assert.match(strings.mapping.moved_text, /^cvs15\d$/);
    assert.equal(strings.must('moved_text'), 'x');
  } finally {
    // Back to the environment's settings and the default indices.
    setupAPI();
    await custom.close();
  }
  const fourth = randomUUID();
  anosysRawLogger({ marker: fourth, restored_text: 'y' });
  const restored = await env.one((r) => r.get('marker') === fourth);
  assert.match(restored.mapping.restored_text, /^cvs1[0-4]\d$/, 'from cvs100 again');
  assert.equal(restored.must('restored_text'), 'y');

  // setupDecorator is the same function (the Python SDK's name).
  setupDecorator({ startingIndices: { string: 100, number: 3, bool: 1 } });
  setupDecorator();
});
