// Instrumentation of the official `openai` npm package.
//
// The wrappers hand requests, responses and streamed events to the Rust
// engine as JSON text; extraction of the GenAI attributes and aggregation
// of streamed chunks happen there, in the same code the Rust client, the
// proxy and the Python package use.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';


import { errorType } from './logger.js';
import { toJson, wireJson } from './json.js';
import { otelParent } from './otel.js';
import { currentCall, markCaptured, native, openCalls } from './runtime.js';

const ORIGINAL = Symbol.for('anosys.openai.original');
/**
 * A call, in the request options a wrapped method hands to openai (which
 * copies them, symbols included, into the options its `buildRequest`
 * gets): the body openai sends is kept for the call as it is built.
 */
const CALL = Symbol('anosys.openai.call');

/** [resource path on a client, method, API path] */
const TARGETS = [
  [['chat', 'completions'], 'create', 'chat/completions'],
  [['embeddings'], 'create', 'embeddings'],
  [['images'], 'generate', 'images/generations'],
  [['responses'], 'create', 'responses'],
];

const settings = { getUserContext: undefined };

function resourceOf(client, path) {
  let resource = client;
  for (const key of path) resource = resource?.[key];
  return resource && typeof resource === 'object' ? resource : undefined;
}

function userContext() {
  const fn = settings.getUserContext;
  if (typeof fn !== 'function') return undefined;
  try {
    const value = fn();
    return value === undefined || value === null ? undefined : toJson(value);
  } catch (error) {
    return toJson({ 'anosys.user_context_error': `${errorType(error)}: ${error?.message ?? error}` });
  }
}

function urlOf(resource, apiPath) {
  const base = String(resource?._client?.baseURL ?? 'https://api.openai.com/v1');
  return base.endsWith('/') ? base + apiPath : `${base}/${apiPath}`;
}

/** What a call recorded in one step answers to anything more: it has ended. */
const ENDED = Object.freeze({
  finish: () => false,
  finishBytes: () => false,
  fail: () => false,
  cancel: () => false,
  pushData() {},
  pushBytes() {},
  endStream: () => false,
});

/**
 * One call through a wrapped method. A plain call's record is made in one
 * step when its response has come (`native.recordOpenAICall`, a single
 * crossing into the addon); the addon's `OpenAICall` is made only for what
 * needs one (a stream, an error, a cancel, a raw body), as if started when
 * the call was.
 */
class Call {
  constructor(sent, url, body, request, streaming, parent, user) {
    /** When the call began (`performance.now()`). */
    this.sent = sent;
    this.url = url;
    /** The body as the application passed it. */
    this.body = body;
    /**
     * The request's JSON text: the body openai sent (kept by its
     * `buildRequest`), or the body written out when the call began.
     */
    this.request = request;
    this.parent = parent;
    this.user = user;
    this.handle = undefined;
    this.streaming = streaming;
    this.watched = false;
    this.recorded = false;
    /** A plain reply's text, as openai read it. */
    this.text = undefined;
    /**
     * How a stream's events reach the addon: `'bytes'` once its body's
     * chunks have come through `tapBody`, `'events'` once an event was
     * written out from its object instead (never both).
     */
    this.tap = undefined;
    /**
     * A stream's body chunks not yet handed to the addon: those after the
     * first event, handed over together at the end (or every
     * `HELD_BYTES`), one crossing instead of one a chunk. The first event
     * goes at once, for its time.
     */
    this.held = undefined;
    this.heldBytes = 0;
    /** Whether a stream's body so far has shown a `data:` field. */
    this.sawData = false;
    // A stream's events go to the addon as they come: its call is made
    // now, unless openai is to give the body it sends (then at the reply).
    if (streaming && request !== undefined) this.native();
  }

  /** The request's JSON text, written out from the body if openai did not give it. */
  requestText() {
    if (this.request === undefined) this.request = wireJson(this.body ?? {});
    return this.request;
  }

  /** The addon's `OpenAICall`, made now if it was not yet. */
  native() {
    if (this.handle === undefined) {
      // Recorded in one step already: a call ends once.
      if (this.recorded) return ENDED;
      this.handle = new native.OpenAICall(
        this.url,
        this.requestText(),
        undefined,
        this.parent?.traceId,
        this.parent?.spanId,
        this.user,
        performance.now() - this.sent,
        this.streaming,
      );
    }
    if (this.heldBytes > 0) this.handOverHeld();
    return this.handle;
  }

  /** Passes on a chunk of a stream's body, as its reader gave it. */
  passChunk(bytes) {
    this.tap = 'bytes';
    if (this.held === undefined) {
      this.native().pushBytes(bytes);
      if (endsFirstEvent(this, bytes)) this.held = [];
      return;
    }
    this.held.push(bytes);
    this.heldBytes += bytes.length;
    if (this.heldBytes >= HELD_BYTES) this.handOverHeld();
  }

  /** Hands the held chunks to the addon, in one crossing. */
  handOverHeld() {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    (this.handle ?? ENDED).pushBytes(held.length === 1 ? held[0] : Buffer.concat(held));
  }

  finish(status, response) {
    if (this.handle !== undefined) return this.handle.finish(status, response);
    if (this.recorded) return false;
    this.recorded = true;
    const parent = this.parent;
    return native.recordOpenAICall(
      this.url,
      this.requestText(),
      performance.now() - this.sent,
      status,
      response,
      parent?.traceId,
      parent?.spanId,
      this.user,
    );
  }

  cancel() {
    return this.native().cancel();
  }
}

function startCall(resource, apiPath, body) {
  try {
    const sent = performance.now();
    // The innermost of the decorated call and the active OpenTelemetry span.
    const parent = otelParent() ?? currentCall.getStore();
    // A client whose `buildRequest` gives the body it sends: not written
    // out here (a 41 KB history costs JSON.stringify about 110 µs), and
    // the record holds what was sent. Otherwise written out now, before
    // the application can change the body it passed.
    const request = resource?._client?.buildRequest?.[ORIGINAL] ? undefined : wireJson(body ?? {});
    const call = new Call(sent, urlOf(resource, apiPath), body, request, body?.stream === true, parent, userContext());
    openCalls.add(call);
    return call;
  } catch {
    return undefined;
  }
}

/** Records `call` as cancelled if `holder` is garbage-collected first. */
function watch(holder, call) {
  unread.register(holder, call, call);
  call.watched = true;
}

function unwatch(call) {
  if (!call.watched) return;
  call.watched = false;
  unread.unregister(call);
}

function ended(call) {
  openCalls.delete(call);
  unwatch(call);
  markCaptured();
}

// A reply the application drops without reading it through openai (a
// promise never awaited, `.asResponse()` read raw, a stream not read to its
// end): when it is garbage-collected, its call is recorded as cancelled,
// with what was known, and no longer held.
const unread = new FinalizationRegistry((call) => {
  if (!openCalls.has(call)) return;
  try {
    call.cancel();
  } catch {
    // ended meanwhile
  }
  openCalls.delete(call);
  markCaptured();
});

function recordError(call, error) {
  try {
    const status = typeof error?.status === 'number' && error.status > 0 ? error.status : undefined;
    // An APIError carries the body's `error` object; rebuild the body.
    const body = status !== undefined && error?.error !== undefined ? wireJson({ error: error.error }) : undefined;
    call.native().fail(errorType(error), String(error?.message ?? error), status, body);
  } catch {
    // capture never breaks the caller
  } finally {
    ended(call);
  }
}

/** Follows a stream's events as the caller reads them. */
function observeIterator(iterator, call, stream) {
  let over = false;
  const end = (how, error) => {
    if (over) return;
    over = true;
    try {
      if (how === 'error') recordError(call, error);
      else if (how === 'cancel' || stream?.controller?.signal?.aborted) call.cancel();
      else call.native().endStream();
    } catch {
      // capture never breaks the caller
    } finally {
      ended(call);
    }
  };
  const onStep = (step) => {
    if (step.done) {
      end('done');
    } else if (!over && call.tap !== 'bytes') {
      // The body's bytes did not come through `tapBody`: the event is
      // written out from its object instead.
      call.tap = 'events';
      try {
        call.native().pushData(wireJson(step.value));
      } catch {
        // capture never breaks the caller
      }
    }
    return step;
  };
  const onError = (error) => {
    end('error', error);
    throw error;
  };
  return {
    // Not an `async` function: one promise an event fewer.
    next(...args) {
      let next;
      try {
        next = iterator.next(...args);
      } catch (error) {
        end('error', error);
        return Promise.reject(error);
      }
      return Promise.resolve(next).then(onStep, onError);
    },
    async return(value) {
      // An early `break`, or the consumer gave up: keep what arrived.
      end('cancel');
      return typeof iterator.return === 'function' ? iterator.return(value) : { done: true, value };
    },
    async throw(error) {
      end('error', error);
      if (typeof iterator.throw === 'function') return iterator.throw(error);
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * Hands a streamed reply's body to the engine as openai reads it: the
 * events are parsed on the engine's side from the bytes that came, not
 * written out again from the objects openai parsed. The response's `body`
 * becomes a stand-in for it (a proxy: every other use goes to the body
 * itself) whose reader (openai 7) and async iterator (earlier versions)
 * pass each chunk to `Call.passChunk`: at once up to the first event with
 * data, held and handed over together after it. The body stream itself
 * is left as it is (a method set on it made every chunk several
 * microseconds slower). Read some other way, its events are recorded by
 * `observeIterator` instead.
 */
function tapBody(response, call) {
  const body = response?.body;
  if (body === null || typeof body !== 'object' || Object.hasOwn(response, 'body')) return;
  const pass = (step) => {
    if (!step.done && step.value != null && call.tap !== 'events') {
      try {
        const bytes = asBytes(step.value);
        if (bytes !== undefined) call.passChunk(bytes);
      } catch {
        // capture never breaks the caller
      }
    }
    return step;
  };
  const getReader = (...args) => {
    const reader = body.getReader(...args);
    if (args[0]?.mode !== undefined) return reader; // a BYOB reader: not tapped
    return {
      read: () => reader.read().then(pass),
      releaseLock: () => reader.releaseLock(),
      cancel: (reason) => reader.cancel(reason),
      get closed() {
        return reader.closed;
      },
    };
  };
  const iterate = (...args) => {
    const chunks = body[Symbol.asyncIterator](...args);
    return {
      next: (...nextArgs) => chunks.next(...nextArgs).then(pass),
      return: (value) => (typeof chunks.return === 'function' ? chunks.return(value) : Promise.resolve({ done: true, value })),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  };
  const standIn = new Proxy(body, {
    get(target, key) {
      if (key === 'getReader' && typeof target.getReader === 'function') return getReader;
      if (key === Symbol.asyncIterator && typeof target[key] === 'function') return iterate;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  try {
    Object.defineProperty(response, 'body', { value: standIn, configurable: true });
  } catch {
    // a frozen response: its events are recorded as they come out
  }
}

const utf8 = new TextEncoder();
const utf8Text = new TextDecoder();
/** Held chunks are handed over once they come to this many bytes. */
const HELD_BYTES = 64 * 1024;

/**
 * Whether `bytes`, the latest chunk of `call`'s stream body, ends its
 * first event with data (a blank line after a `data:` field): later
 * chunks may then be held, the time to first chunk being known. A blank
 * line split between two chunks is not seen; the next chunks then go at
 * once too, which is only slower.
 */
function endsFirstEvent(call, bytes) {
  const text = utf8Text.decode(bytes);
  const data = text.indexOf('data:');
  if (data !== -1) call.sawData = true;
  if (!call.sawData) return false;
  const from = data === -1 ? 0 : data;
  return /\n\n|\r\n\r\n|\r\r/.test(text.slice(from));
}

/** A body chunk as bytes, read as openai reads it. */
function asBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (typeof chunk === 'string') return utf8.encode(chunk);
  return undefined;
}

function observeStream(stream, call) {
  if (stream && typeof stream === 'object') watch(stream, call);
  if (typeof stream?.iterator === 'function') {
    // openai's Stream: every way of reading it (for await, tee,
    // toReadableStream) goes through `this.iterator()`.
    const inner = stream.iterator;
    stream.iterator = function () {
      return observeIterator(inner.call(this), call, stream);
    };
    return stream;
  }
  if (typeof stream?.[Symbol.asyncIterator] === 'function') {
    const inner = stream[Symbol.asyncIterator];
    stream[Symbol.asyncIterator] = function () {
      return observeIterator(inner.call(this), call, stream);
    };
    return stream;
  }
  // Not a stream after all: record what came back.
  call.finish(200, wireJson(stream));
  ended(call);
  return stream;
}

/**
 * Keeps the text of `response` for `call` when openai reads it (openai 7
 * reads a JSON reply with `text()` and parses it), so that a plain reply
 * is recorded from the text that came, not from the parsed object written
 * out again.
 */
function keepText(response, call) {
  const read = response?.text;
  if (typeof read !== 'function') return;
  response.text = function () {
    return read.call(this).then((text) => {
      call.text = text;
      return text;
    });
  };
}

function onResult(call, data, response) {
  try {
    unwatch(call);
    if (call.streaming) return observeStream(data, call);
    // The text read, when it is what `data` was parsed from (a JSON reply;
    // openai may have transformed it since, as it decodes base64
    // embeddings: the record keeps what came over the wire).
    const text = data !== null && typeof data === 'object' ? call.text : undefined;
    call.text = undefined;
    call.finish(typeof response?.status === 'number' ? response.status : 200, text ?? wireJson(data));
    ended(call);
  } catch {
    // capture never breaks the caller
  }
  return data;
}

/** Records a reply from a copy of its raw body, as the application reads the original. */
function recordRaw(call, response) {
  if (!openCalls.has(call)) return;
  let copy;
  try {
    if (response.bodyUsed || response.body?.locked) return;
    copy = response.clone();
  } catch {
    return;
  }
  unwatch(call);
  const status = response.status;
  (async () => {
    const handle = call.native();
    if (!call.streaming) {
      handle.finishBytes(status, Buffer.from(await copy.arrayBuffer()));
      return;
    }
    for await (const bytes of copy.body ?? []) handle.pushBytes(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    handle.endStream();
  })().then(
    () => ended(call),
    (error) => recordError(call, error),
  );
}

/**
 * Follows openai's `APIPromise` as it is (`.withResponse()`, `.asResponse()`
 * and every other method keep working): its parsed result passes through
 * us on its way out. Nothing is parsed that the application does not ask
 * for: a raw `.asResponse()` keeps its unread body.
 *
 * One way of recording per call: from the parsed result (awaiting,
 * `.withResponse()`), or from a copy of the raw body (`.asResponse()`
 * alone), whichever the application asks for first.
 *
 * The body is parsed once, by `promise` itself (its `parse()` is cached),
 * whoever awaits it: another wrapper inside anosys's (OpenTelemetry's
 * @opentelemetry/instrumentation-openai, when anosys wraps the method it
 * patched) may await `promise` too.
 */
function observeApiPromise(promise, call) {
  let via;
  const parseResponse = promise.parseResponse;
  promise.parseResponse = async function (client, props) {
    if (via === undefined) {
      via = 'parsed';
      // Read now: recorded when parsed, even if `promise` is collected
      // first (nothing here holds it).
      unwatch(call);
    }
    // The reply's text as openai reads it, recorded as it came rather
    // than written out again from the parsed object.
    if (via === 'parsed') {
      if (call.streaming) tapBody(props?.response, call);
      else keepText(props?.response, call);
    }
    let data;
    try {
      data = await parseResponse.call(this, client, props);
    } catch (error) {
      if (via === 'parsed') recordError(call, error);
      throw error;
    }
    return via === 'parsed' ? onResult(call, data, props?.response) : data;
  };
  const asResponse = promise.asResponse;
  promise.asResponse = function (...args) {
    return asResponse.apply(this, args).then((response) => {
      if (via === undefined) {
        via = 'raw';
        recordRaw(call, response);
      }
      return response;
    });
  };
  promise.responsePromise.then(
    () => {
      // The reply has come and nobody has asked for it yet (awaiting asks
      // at once: openai's `parse()` keeps its promise): record the call as
      // cancelled if `promise` is dropped unread. Watching only then keeps
      // a FinalizationRegistry entry, made and removed, off the usual call.
      if (via === undefined && promise.parsedPromise === undefined) watch(promise, call);
    },
    // HTTP and connection errors, even for a promise nobody awaits.
    (error) => recordError(call, error),
  );
  return promise;
}

/** `options` (a method's request options) with `call` in them. */
function withCall(options, call) {
  const marked = options !== null && typeof options === 'object' ? { ...options } : {};
  marked[CALL] = call;
  return marked;
}

/**
 * Wraps openai's `buildRequest` (of a client, or of the class all clients
 * share) so that the body it builds for a recorded call is kept as the
 * call's request: the JSON text sent, defaults openai adds included.
 */
function wrapBuildRequest(original) {
  if (original[ORIGINAL]) return original;
  const wrapped = function (inputOptions, ...rest) {
    const built = original.call(this, inputOptions, ...rest);
    const call = inputOptions?.[CALL];
    if (call === undefined || typeof built?.then !== 'function') return built;
    return built.then((request) => {
      const body = request?.req?.body;
      if (typeof body === 'string') call.request = body;
      return request;
    });
  };
  Object.defineProperty(wrapped, ORIGINAL, { value: original });
  Object.defineProperty(wrapped, 'name', { value: original.name, configurable: true });
  return wrapped;
}

function wrapMethod(original, apiPath) {
  if (original[ORIGINAL]) return original;
  const wrapped = function (body, options) {
    const call = startCall(this, apiPath, body);
    if (call === undefined) return original.call(this, body, options);
    let promise;
    try {
      promise = original.call(this, body, call.request === undefined ? withCall(options, call) : options);
    } catch (error) {
      recordError(call, error);
      throw error;
    }
    if (
      promise &&
      typeof promise.parse === 'function' &&
      typeof promise.parseResponse === 'function' &&
      typeof promise.responsePromise?.then === 'function'
    ) {
      return observeApiPromise(promise, call);
    }
    return Promise.resolve(promise).then(
      (data) => onResult(call, data, undefined),
      (error) => {
        recordError(call, error);
        throw error;
      },
    );
  };
  Object.defineProperty(wrapped, ORIGINAL, { value: original });
  Object.defineProperty(wrapped, 'name', { value: original.name, configurable: true });
  return wrapped;
}

function applyOptions(options) {
  if (options && Object.prototype.hasOwnProperty.call(options, 'getUserContext')) {
    if (options.getUserContext !== undefined && typeof options.getUserContext !== 'function') {
      throw new TypeError('getUserContext must be a function');
    }
    settings.getUserContext = options.getUserContext;
  }
}

/**
 * Records every call `client` makes through `chat.completions.create`
 * (plain and `stream: true`: async iteration, an early `break`,
 * `stream.controller.abort()`), `embeddings.create`, `images.generate` and
 * `responses.create`. Returns the same client. Instrumenting twice does not
 * record twice.
 *
 * @example
 * import OpenAI from 'openai';
 * import { instrumentOpenAI } from 'anosys';
 * const client = instrumentOpenAI(new OpenAI());
 */
export function instrumentOpenAI(client, options) {
  applyOptions(options);
  if (!client || typeof client !== 'object') {
    throw new TypeError('instrumentOpenAI(client): expected an OpenAI client');
  }
  for (const [path, method, apiPath] of TARGETS) {
    const resource = resourceOf(client, path);
    const original = resource?.[method];
    if (typeof original !== 'function' || original[ORIGINAL]) continue;
    resource[method] = wrapMethod(original, apiPath);
  }
  if (typeof client.buildRequest === 'function' && !client.buildRequest[ORIGINAL]) {
    client.buildRequest = wrapBuildRequest(client.buildRequest);
  }
  return client;
}

/** Wraps the methods on the prototypes every client of `OpenAI` shares. */
function instrumentClass(OpenAI) {
  if (typeof OpenAI !== 'function') return false;
  let sample;
  try {
    sample = new OpenAI({ apiKey: 'anosys-instrumentation-probe', baseURL: 'http://127.0.0.1:9/v1' });
  } catch {
    return false;
  }
  let any = false;
  for (const [path, method, apiPath] of TARGETS) {
    const resource = resourceOf(sample, path);
    const proto = resource && Object.getPrototypeOf(resource);
    const original = proto?.[method];
    if (typeof original !== 'function') continue;
    any = true;
    if (!original[ORIGINAL]) proto[method] = wrapMethod(original, apiPath);
  }
  const build = OpenAI.prototype?.buildRequest;
  if (any && typeof build === 'function' && !build[ORIGINAL]) {
    OpenAI.prototype.buildRequest = wrapBuildRequest(build);
  }
  return any;
}

function classOf(module) {
  if (typeof module === 'function') return module;
  return module?.OpenAI ?? module?.default?.OpenAI ?? module?.default;
}

/**
 * The `openai` package the application uses, both builds of it (the ESM
 * one `import` loads and the CommonJS one `require` loads are separate
 * classes), resolved from the application, not from this package (which
 * may be linked from elsewhere).
 */
function applicationOpenAI() {
  const found = [];
  const starts = [process.argv[1] && resolve(process.argv[1]), join(process.cwd(), 'index.js')].filter(Boolean);
  for (const from of starts) {
    let require;
    let cjs;
    try {
      require = createRequire(from);
      cjs = require.resolve('openai');
    } catch {
      continue;
    }
    try {
      found.push(require(cjs));
    } catch {
      // not loadable as CommonJS
    }
    // The ESM entry: `exports["."].import` / `.default` of its package.json.
    let dir = dirname(cjs);
    while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const root = pkg.exports?.['.'];
      const entry = typeof root === 'object' ? (root.import?.default ?? root.import ?? root.default) : undefined;
      if (typeof entry === 'string' && entry.endsWith('.mjs')) {
        // require(esm) (Node ≥ 20.19) gives the instance `import` gives.
        found.push(require(join(dir, entry)));
      }
    } catch {
      // not resolvable as ESM here
    }
    break;
  }
  return found;
}

/**
 * Records every call the `openai` package makes: instruments the classes
 * every `OpenAI` (and `AzureOpenAI`) client shares, those created before
 * and after.
 *
 * Options: `getUserContext`, called on each call, whose result (say
 * `{ user_id, session_id }`) is stored with the record; `openai`, the
 * `openai` module or `OpenAI` class to instrument when it cannot be found
 * from the application's main script or working directory.
 *
 * @example
 * import { AnosysOpenAILogger } from 'anosys';
 * const logger = new AnosysOpenAILogger({ getUserContext: () => ({ user_id: 'u-42' }) });
 */
export class AnosysOpenAILogger {
  constructor(options = {}) {
    applyOptions(options);
    this.getUserContext = settings.getUserContext;
    const modules = options.openai ? [options.openai] : applicationOpenAI();
    /** Whether an `openai` package was found and instrumented. */
    this.instrumented = modules.map((m) => instrumentClass(classOf(m))).some(Boolean);
  }
}

/** Undoes the instrumentation of `client` (or of the shared classes). */
export function uninstrumentOpenAI(client) {
  for (const [path, method] of TARGETS) {
    const resource = resourceOf(client, path);
    if (!resource) continue;
    if (Object.prototype.hasOwnProperty.call(resource, method) && resource[method]?.[ORIGINAL]) {
      resource[method] = resource[method][ORIGINAL];
    }
    const proto = Object.getPrototypeOf(resource);
    if (proto?.[method]?.[ORIGINAL]) proto[method] = proto[method][ORIGINAL];
  }
  // The body openai builds: the client's own, and the class's.
  if (client && Object.prototype.hasOwnProperty.call(client, 'buildRequest') && client.buildRequest?.[ORIGINAL]) {
    client.buildRequest = client.buildRequest[ORIGINAL];
  }
  for (let proto = client && Object.getPrototypeOf(client); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    if (Object.prototype.hasOwnProperty.call(proto, 'buildRequest') && proto.buildRequest?.[ORIGINAL]) {
      proto.buildRequest = proto.buildRequest[ORIGINAL];
    }
  }
}

