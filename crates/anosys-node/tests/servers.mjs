// Loopback servers the tests run against.
//
// - Upstream: an OpenAI-compatible server replaying recorded OpenAI
//   exchanges (crates/anosys-cli/src/demo/replies.json, extracted from the
//   cassettes in crates/anosys/tests/fixtures/openai-cassettes; the same
//   replies the demo and the Python tests use), streamed event by event.
//   A few replies the recordings do not contain are OpenAI's documented
//   shapes, marked below.
// - Backend: a stand-in for the AnoSys ingestion API that keeps every
//   POSTed record and decodes its columns back to logical keys through the
//   mapping each record carries in `otel_schema_url`.

import { mkdtempSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// ANOSYS_TEST_REPLIES: where they are when the suite runs from a copy of
// this folder (scripts/test.sh, against the installed tarballs).
const repliesPath = process.env.ANOSYS_TEST_REPLIES || join(here, '..', '..', 'anosys-cli', 'src', 'demo', 'replies.json');
export const REPLIES = JSON.parse(readFileSync(repliesPath, 'utf8'));

// Not in the recordings: OpenAI's documented shape.
export const IMAGE_REPLY = {
  created: 1731368700,
  data: [{ url: 'https://example.invalid/cat.png', revised_prompt: 'A small cat, watercolour' }],
  usage: { input_tokens: 12, output_tokens: 4160, total_tokens: 4172, input_tokens_details: { text_tokens: 12, image_tokens: 0 } },
};

function apiError(status, code, message) {
  return { error: { message, type: status >= 500 ? 'server_error' : 'invalid_request_error', param: null, code } };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

async function listen(handler) {
  const server = createServer((req, res) => {
    handler(req, res).catch((error) => {
      res.destroy(error);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function sendJson(res, status, value, contentType = 'application/json') {
  const data = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
  res.writeHead(status, { 'content-type': contentType, 'content-length': data.length });
  res.end(data);
}

async function sendStream(res, events, { pauseMs = 1 } = {}) {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
  for (const event of events) {
    if (res.destroyed || res.writableEnded) return;
    res.write(event);
    // No pause: written back to back (they come in reads of many).
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
  res.end();
}

export class Upstream {
  static async start() {
    const upstream = new Upstream();
    upstream.server = await listen((req, res) => upstream.handle(req, res));
    upstream.url = `http://127.0.0.1:${upstream.server.address().port}`;
    return upstream;
  }

  constructor() {
    this.seen = [];
  }

  async handle(req, res) {
    const raw = await readBody(req);
    let body = null;
    try {
      body = JSON.parse(raw.toString() || 'null');
    } catch {
      body = null;
    }
    this.seen.push({ path: req.url, headers: req.headers, body });
    const model = String(body?.model ?? '');
    const stream = Boolean(body?.stream);
    const path = req.url.split('?')[0].replace(/\/$/, '');
    if (model.startsWith('error-')) {
      const status = Number(model.split('-')[1]);
      return sendJson(res, status, apiError(status, `test_${status}`, `synthetic ${status} from the test upstream`));
    }
    if (path.endsWith('/chat/completions')) {
      if (model === 'this-model-does-not-exist') return this.reply(res, 'chat_not_found');
      if (model === 'broken-stream') return this.brokenStream(res);
      // 40 ms between events, a comment event first (as some servers send).
      if (model === 'slow-stream') return this.reply(res, 'chat_stream', { pauseMs: 40, comment: true });
      if (model === 'long-stream') return this.longStream(res);
      // The chat reply, its answer the last message's content (text the
      // test chooses: non-ASCII, long).
      if (model === 'echo') {
        const reply = JSON.parse(REPLIES.chat.body);
        reply.choices[0].message.content = body.messages.at(-1).content;
        return sendJson(res, 200, reply);
      }
      if (model === 'slow-reply') {
        await new Promise((r) => setTimeout(r, 150));
        return this.reply(res, 'chat');
      }
      if (stream) return this.reply(res, body.tools ? 'chat_stream_tools' : 'chat_stream');
      return this.reply(res, body.tools ? 'chat_tools' : 'chat');
    }
    if (path.endsWith('/embeddings')) {
      if (model.startsWith('non-existent')) return this.reply(res, 'embeddings_not_found');
      // As OpenAI does: base64 of the floats when asked (openai asks unless
      // told otherwise), a list of numbers otherwise.
      return this.reply(res, body.encoding_format === 'base64' ? 'embeddings_base64' : 'embeddings');
    }
    if (path.endsWith('/responses')) {
      if (model === 'this-model-does-not-exist') return this.reply(res, 'responses_not_found');
      return this.reply(res, stream ? 'responses_stream' : 'responses');
    }
    if (path.endsWith('/images/generations')) return sendJson(res, 200, IMAGE_REPLY);
    return sendJson(res, 404, apiError(404, 'unknown_url', `no route ${path}`));
  }

  reply(res, role, options) {
    const reply = REPLIES[role];
    if (!reply.content_type.startsWith('text/event-stream')) {
      return sendJson(res, Number(reply.status), reply.body, reply.content_type);
    }
    const events = reply.body.split('\n\n').filter((e) => e.trim()).map((e) => `${e}\n\n`);
    if (options?.comment) events.unshift(': keep-alive\n\n');
    return sendStream(res, events, options);
  }

  /**
   * The recorded stream with its content events 300 times over (about
   * 450 KB), written back to back after a comment event, as some
   * OpenAI-compatible servers send one first.
   */
  longStream(res) {
    const events = REPLIES.chat_stream.body.split('\n\n').filter((e) => e.trim()).map((e) => `${e}\n\n`);
    const content = events.slice(1, -3);
    const long = [': keep-alive\n\n', events[0], ...Array.from({ length: 300 }, () => content).flat(), ...events.slice(-3)];
    return sendStream(res, long, { pauseMs: 0 });
  }

  brokenStream(res) {
    const first = {
      id: 'chatcmpl-x',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'broken-stream',
      choices: [{ index: 0, delta: { role: 'assistant', content: 'Par' }, finish_reason: null }],
    };
    const error = { error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: 'server_error' } };
    return sendStream(res, [`data: ${JSON.stringify(first)}\n\n`, `data: ${JSON.stringify(error)}\n\n`]);
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/** One record as the AnoSys backend received it, read by logical key. */
export class Record {
  constructor(body) {
    this.body = body;
    this.mapping = JSON.parse(body.otel_schema_url || '{}');
  }

  get(key) {
    return this.body[this.mapping[key] ?? key];
  }

  json(key) {
    const value = this.get(key);
    if (value === undefined || value === null) return undefined;
    return typeof value === 'string' ? JSON.parse(value) : value;
  }

  /** The value of `key`, which must be there. */
  must(key) {
    const value = this.get(key);
    if (value === undefined || value === null) {
      throw new Error(`no ${key} in the record (columns: ${Object.keys(this.body).sort().join(', ')})`);
    }
    return value;
  }
}

export class Backend {
  static async start() {
    const backend = new Backend();
    backend.server = await listen(async (req, res) => {
      const data = await readBody(req);
      backend.headers.push(req.headers);
      backend.bodies.push(JSON.parse(data.toString()));
      res.writeHead(200, { 'content-length': 2 });
      res.end('{}');
    });
    backend.url = `http://127.0.0.1:${backend.server.address().port}`;
    return backend;
  }

  constructor() {
    this.bodies = [];
    this.headers = [];
  }

  records() {
    return this.bodies.map((b) => new Record(b));
  }

  /** The records `match` accepts, once there are `count` of them (flushing meanwhile). */
  async waitFor(match, { count = 1, timeoutMs = 10_000, flush } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (flush) await flush({ timeoutMs: 2000 });
      const found = this.records().filter(match);
      if (found.length >= count) return found;
      if (Date.now() > deadline) {
        throw new Error(`expected ${count} records, got ${found.length}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async one(match, options) {
    const found = await this.waitFor(match, options);
    if (found.length !== 1) throw new Error(`expected one record, got ${found.length}`);
    return found[0];
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * Starts both servers, points the package at them (before it is imported:
 * the pipeline reads its configuration from the environment on first use)
 * and imports it.
 */
export async function setup() {
  const backend = await Backend.start();
  const upstream = await Upstream.start();
  process.env.ANOSYS_API_URL = `${backend.url}/log`;
  delete process.env.ANOSYS_API_KEY;
  process.env.ANOSYS_FLUSH_INTERVAL_MS = '20';
  // Records that miss the stand-in (captured after it closed) land here,
  // not in the package's folder.
  process.env.ANOSYS_DB = join(mkdtempSync(join(tmpdir(), 'anosys-node-test-')), 'fallback.db');
  const anosys = await import('anosys');
  const flush = anosys.flush;
  return {
    backend,
    upstream,
    anosys,
    waitFor: (match, options = {}) => backend.waitFor(match, { flush, ...options }),
    one: (match, options = {}) => backend.one(match, { flush, ...options }),
    async close() {
      await flush({ timeoutMs: 2000 });
      await Promise.all([backend.close(), upstream.close()]);
    },
  };
}

/** Runs a process to its end (killed after `timeoutMs`): its exit code and output. */
export function runProcess(command, args, { timeoutMs = 60_000, ...options } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, output: stdout + stderr });
    });
  });
}
