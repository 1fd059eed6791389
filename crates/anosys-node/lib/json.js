// Any JavaScript value → JSON text, for inputs, outputs and raw records.
// Never throws: cycles, BigInt, functions, symbols, Maps, Sets, typed
// arrays, errors and getters that throw all become something readable, and
// depth and size are bounded so a huge object cannot stall the caller.

const MAX_DEPTH = 24;
const MAX_NODES = 100_000;
const MAX_BYTES_SHOWN = 64;

function describeBytes(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, Math.min(view.byteLength, MAX_BYTES_SHOWN));
  return `<${view.constructor?.name ?? 'bytes'} ${view.byteLength} bytes: ${Buffer.from(bytes).toString('base64')}${view.byteLength > MAX_BYTES_SHOWN ? '…' : ''}>`;
}

function plain(value, depth, seen, budget) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
    case 'undefined':
      return null;
    case 'symbol':
      return value.toString();
    case 'function':
      return `[Function ${value.name || 'anonymous'}]`;
    default:
      break;
  }
  if (value === null) return null;
  if (--budget.nodes < 0) return '[…]';
  if (depth >= MAX_DEPTH) return '[depth limit]';
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  try {
    if (value instanceof Error) {
      const out = { name: value.name, message: value.message };
      if (value.stack) out.stack = value.stack;
      if (value.cause !== undefined) out.cause = plain(value.cause, depth + 1, seen, budget);
      return out;
    }
    if (typeof value.then === 'function') return '[Promise]';
    if (ArrayBuffer.isView(value)) {
      if (value instanceof DataView || value instanceof Uint8Array) return describeBytes(value);
      return Array.from(value, (v) => plain(v, depth + 1, seen, budget));
    }
    if (typeof value.toJSON === 'function') {
      return plain(value.toJSON(), depth + 1, seen, budget);
    }
    if (value instanceof ArrayBuffer) return describeBytes(new Uint8Array(value));
    if (Array.isArray(value) || value instanceof Set) {
      const out = [];
      for (const v of value) out.push(plain(v, depth + 1, seen, budget));
      return out;
    }
    if (value instanceof Map) {
      const out = {};
      for (const [k, v] of value) out[typeof k === 'string' ? k : String(plain(k, depth + 1, seen, budget))] = plain(v, depth + 1, seen, budget);
      return out;
    }
    if (value instanceof WeakMap || value instanceof WeakSet || value instanceof WeakRef) return `[${value.constructor.name}]`;
    const out = {};
    for (const key of Object.keys(value)) {
      let v;
      try {
        v = value[key];
      } catch (error) {
        v = `[getter threw: ${error?.message ?? error}]`;
      }
      out[key] = plain(v, depth + 1, seen, budget);
    }
    return out;
  } catch (error) {
    return `[unserializable: ${error?.message ?? error}]`;
  } finally {
    seen.delete(value);
  }
}

/** The value as a JSON-compatible structure (see the module comment). */
export function toPlain(value) {
  return plain(value, 0, new Set(), { nodes: MAX_NODES });
}

/** The value as JSON text; never throws. */
export function toJson(value) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : JSON.stringify(String(value));
    default:
      return JSON.stringify(toPlain(value));
  }
}

/**
 * JSON text of data that is JSON already (requests to and replies from an
 * OpenAI-compatible API): the fast path, falling back to `toJson` for
 * anything `JSON.stringify` rejects (a BigInt, a cycle).
 */
export function wireJson(value) {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  } catch {
    return toJson(value);
  }
}
