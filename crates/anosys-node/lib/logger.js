// anosysLogger: one record per call of a marked function.

import { basename, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { toJson } from './json.js';
import { otelParent, withCallAsOtelSpan } from './otel.js';
import { currentCall, markCaptured, native, openCalls } from './runtime.js';

const MARK = Symbol.for('anosys.logged');

/** V8 call sites above `below` (structured, no stack text to parse). */
function callSites(below, limit) {
  const previousPrepare = Error.prepareStackTrace;
  const previousLimit = Error.stackTraceLimit;
  const holder = {};
  try {
    Error.prepareStackTrace = (_, sites) => sites;
    Error.stackTraceLimit = limit;
    Error.captureStackTrace(holder, below);
    return Array.isArray(holder.stack) ? holder.stack : [];
  } catch {
    return [];
  } finally {
    Error.prepareStackTrace = previousPrepare;
    Error.stackTraceLimit = previousLimit;
  }
}

function filePath(name) {
  if (typeof name !== 'string') return '';
  if (name.startsWith('file://')) {
    try {
      return fileURLToPath(name);
    } catch {
      return name;
    }
  }
  return name;
}

function site(callSite) {
  if (!callSite) return { fn: undefined, file: '', line: 0 };
  let fn;
  try {
    fn = callSite.getFunctionName() ?? undefined;
    const type = callSite.getTypeName?.();
    if (fn && type && type !== 'Object' && !callSite.isToplevel?.()) fn = `${type}.${fn}`;
  } catch {
    fn = undefined;
  }
  return { fn, file: filePath(callSite.getFileName?.()), line: callSite.getLineNumber?.() ?? 0 };
}

/** The error's kind: its `name`, or its class when the name is plain "Error". */
export function errorType(error) {
  if (error instanceof Error || (error && typeof error === 'object' && 'message' in error)) {
    const name = typeof error.name === 'string' && error.name ? error.name : 'Error';
    const ctor = error.constructor?.name;
    return name === 'Error' && ctor && ctor !== 'Object' ? ctor : name;
  }
  return error === null ? 'null' : typeof error;
}

/** Ends `call` with `end`; capture never breaks the caller. */
function settle(call, end) {
  try {
    end();
  } catch {
    // capture never breaks the caller
  } finally {
    openCalls.delete(call);
    markCaptured();
  }
}

/** JSON text of what a call produced, if content is captured. */
const produced = (call, output) => (output !== undefined && call.content ? toJson(output) : undefined);

function fail(call, error, output) {
  settle(call, () => {
    const message = error instanceof Error || (error && typeof error === 'object' && 'message' in error) ? String(error.message) : String(error);
    const stack = typeof error?.stack === 'string' ? error.stack : undefined;
    call.fail(errorType(error), message, stack, produced(call, output));
  });
}

function finish(call, value) {
  settle(call, () => call.finish(call.content ? toJson(value) : undefined));
}

function cancel(call, output) {
  settle(call, () => call.cancel(produced(call, output)));
}

/** Items of a generator kept for its record; the rest are counted. */
const MAX_ITEMS = 1000;

/**
 * A generator's (or async generator's) iterator, run as the call: `next`,
 * `throw` and `return` are forwarded, each step runs with the call as the
 * current parent, and the record ends when the generator finishes (output:
 * what it yielded, and what it returned), throws, or is closed early
 * (cancelled, keeping what it yielded).
 */
function traced(call, scope, iterator, isAsync) {
  const items = [];
  let more = 0;
  let over = false;
  let closing = false;
  const yielded = () => (more ? [...items, `… ${more} more`] : items);
  const onStep = (step) => {
    if (over) return step;
    if (step?.done) {
      over = true;
      if (closing) cancel(call, yielded());
      else finish(call, step.value === undefined ? yielded() : { yielded: yielded(), returned: step.value });
    } else if (items.length < MAX_ITEMS) {
      items.push(step?.value);
    } else {
      more += 1;
    }
    return step;
  };
  const onError = (error) => {
    if (!over) {
      over = true;
      fail(call, error, yielded());
    }
    throw error;
  };
  const step = (method, arg) => {
    let result;
    try {
      result = currentCall.run(scope, () => withCallAsOtelSpan(scope, () => iterator[method](arg)));
    } catch (error) {
      return onError(error);
    }
    return isAsync ? Promise.resolve(result).then(onStep, onError) : onStep(result);
  };
  const it = {
    next: (value) => step('next', value),
    throw: (error) => step('throw', error),
    return: (value) => {
      // Closed before its end (a `break` out of for…of): cancelled.
      closing = true;
      return step('return', value);
    },
    [isAsync ? Symbol.asyncIterator : Symbol.iterator]() {
      return it;
    },
    [Symbol.toStringTag]: isAsync ? 'AsyncGenerator' : 'Generator',
  };
  return it;
}

function start(meta, wrapper, args) {
  try {
    const caller = site(callSites(wrapper, 1)[0]);
    // The innermost of the decorated call and the active OpenTelemetry span.
    const parent = otelParent() ?? currentCall.getStore();
    const input = native.captureContentEnabled() ? toJson({ args }) : undefined;
    const call = new native.FunctionCall(
      meta.name,
      meta.source,
      meta.file,
      meta.line,
      caller.fn,
      caller.file,
      caller.line,
      parent?.traceId,
      parent?.spanId,
      input,
    );
    openCalls.add(call);
    return call;
  } catch {
    return undefined;
  }
}

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

function wrap(fn, source, name, definition) {
  if (typeof fn !== 'function') {
    throw new TypeError(`anosysLogger: expected a function to wrap, got ${fn === null ? 'null' : typeof fn}`);
  }
  if (fn[MARK]) return fn;
  const where = site(definition);
  const meta = {
    name: name || fn.name || 'anonymous',
    source: source ?? (where.file ? basename(where.file, extname(where.file)) : 'node'),
    file: where.file,
    line: where.line,
  };
  const kind = fn.constructor?.name;
  const isAsync = kind === 'AsyncFunction';
  const isGenerator = kind === 'GeneratorFunction' || kind === 'AsyncGeneratorFunction';

  const wrapper = function (...args) {
    const call = start(meta, wrapper, args);
    if (call === undefined) {
      return new.target ? Reflect.construct(fn, args, new.target) : fn.apply(this, args);
    }
    // What children read: the ids are fetched from the engine only if a
    // child asks for them.
    const scope = {
      get traceId() {
        return call.traceId;
      },
      get spanId() {
        return call.spanId;
      },
    };
    let result;
    try {
      result = currentCall.run(scope, () =>
        withCallAsOtelSpan(scope, () => (new.target ? Reflect.construct(fn, args, new.target) : fn.apply(this, args))),
      );
    } catch (error) {
      fail(call, error);
      throw error;
    }
    if (isGenerator && result && typeof result.next === 'function') {
      return traced(call, scope, result, kind === 'AsyncGeneratorFunction');
    }
    if (isAsync || (isThenable(result) && !new.target)) {
      // The caller keeps the very promise the function returned (an
      // APIPromise keeps `.withResponse()`); the record follows it on a
      // branch of its own that never rejects.
      Promise.resolve(result).then(
        (value) => finish(call, value),
        (error) => fail(call, error),
      );
      return result;
    }
    finish(call, result);
    return result;
  };
  Object.defineProperty(wrapper, 'name', { value: fn.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: fn.length, configurable: true });
  Object.defineProperty(wrapper, MARK, { value: fn });
  if (fn.prototype !== undefined) wrapper.prototype = fn.prototype;
  return wrapper;
}

/**
 * Records each call of a function: inputs, output, the caller, duration,
 * and a thrown error (name, message, stack), which is re-thrown unchanged.
 *
 * A sync function stays sync (it returns its value, not a Promise); an
 * async function, or one returning a promise, is recorded when the promise
 * settles and its caller gets that same promise. `this` is preserved, and
 * OpenAI calls and other logged functions called inside become children
 * of the call, across `await`s.
 *
 * Works as a wrapper, `anosysLogger('billing')(charge)`, without a source,
 * `anosysLogger(charge)`, and as a method decorator (TypeScript's
 * standard decorators and `experimentalDecorators`).
 *
 * @example
 * import { anosysLogger } from 'anosys';
 * const add = anosysLogger('math')((a, b) => a + b);
 * add(1, 2); // 3, and a record of the call
 */
export function anosysLogger(source) {
  const definition = callSites(anosysLogger, 1)[0];
  if (typeof source === 'function') {
    return wrap(source, undefined, undefined, definition);
  }
  if (source !== undefined && source !== null && typeof source !== 'string') {
    throw new TypeError('anosysLogger(source): source must be a string');
  }
  return function decorate(target, context, descriptor) {
    // experimentalDecorators: (prototype, key, descriptor)
    if (descriptor && typeof descriptor === 'object' && typeof descriptor.value === 'function') {
      descriptor.value = wrap(descriptor.value, source ?? undefined, String(context), definition);
      return descriptor;
    }
    // Standard decorators: (method, { kind: 'method', name })
    if (context && typeof context === 'object' && 'kind' in context) {
      return wrap(target, source ?? undefined, String(context.name), definition);
    }
    return wrap(target, source ?? undefined, undefined, definition);
  };
}
