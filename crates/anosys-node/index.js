// anosys for Node.js: LLM observability on the anosys Rust engine.
//
//   import { AnosysOpenAILogger, anosysLogger, anosysRawLogger, flush } from 'anosys';
//
// See index.d.ts for the documented API.

import { toJson } from './lib/json.js';
import { flush, markCaptured, native, VERSION } from './lib/runtime.js';

export { anosysLogger } from './lib/logger.js';
export { AnosysOpenAILogger, instrumentOpenAI, uninstrumentOpenAI } from './lib/openai.js';
export { AnosysSpanExporter } from './lib/otel.js';
export { flush, VERSION };

/** Logs arbitrary data as one record; each top-level key is its own column. */
export function anosysRawLogger(data) {
  try {
    const ok = native.logRaw(toJson(data));
    markCaptured();
    return ok;
  } catch {
    return false;
  }
}

/** Where records go (`path`: the AnoSys log URL) and the first dynamic column per type. */
export function setupAPI({ path, startingIndices } = {}) {
  if (path !== undefined && path !== null && typeof path !== 'string') {
    throw new TypeError('setupAPI: path must be a string');
  }
  if (startingIndices !== undefined && startingIndices !== null && typeof startingIndices !== 'object') {
    throw new TypeError('setupAPI: startingIndices must be an object such as { string: 100, number: 3, bool: 1 }');
  }
  native.setupApi(path ?? undefined, startingIndices ?? undefined);
}

/** The seed SDK's names for setupAPI. */
export const setupApi = setupAPI;
export const setupDecorator = setupAPI;

/**
 * Has `callback` see every record before it is queued: it gets the record
 * as an object and returns it (changed or not) or `true` to keep it, `null`,
 * `undefined` or `false` to drop it (counted as `filtered`). A callback that
 * throws drops the record (reported once on stderr; never thrown into your
 * code). `null` removes it.
 */
export function setBeforeSend(callback) {
  if (callback === null || callback === undefined) {
    native.setBeforeSend(undefined);
    return;
  }
  if (typeof callback !== 'function') {
    throw new TypeError('setBeforeSend: callback must be a function (or null)');
  }
  native.setBeforeSend((text) => {
    const answer = callback(JSON.parse(text));
    if (answer === true) return 'true';
    if (answer === null || answer === undefined || answer === false) return null;
    return JSON.stringify(answer);
  });
}

/** The pipeline's counters: captured, delivered and dropped by reason. */
export function counters() {
  return native.counters();
}

/** Shuts the pipeline down, delivering what it holds; a later capture starts a new one. */
export function shutdown({ timeoutMs } = {}) {
  return native.shutdownSync(timeoutMs);
}
