// The process-wide side of the package: the native engine, the current
// call (AsyncLocalStorage, so children are found across awaits), the
// resource identity, and delivery before the process exits.

import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import native from './native.js';

const packageRoot = dirname(dirname(fileURLToPath(import.meta.url)));

/** This package's version (package.json). */
export const VERSION = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')).version;

/** The decorated call the code now running belongs to. */
export const currentCall = new AsyncLocalStorage();

/** Calls started and not yet ended: ended as cancelled when the process exits. */
export const openCalls = new Set();

let captured = false;

/** Notes that something was captured since the last flush. */
export function markCaptured() {
  captured = true;
}

/**
 * The application's name and version: the nearest package.json above the
 * main script (else the working directory) that is not this package's own.
 */
export function applicationIdentity(start = process.argv[1] ? dirname(resolve(process.argv[1])) : process.cwd()) {
  let dir = start;
  for (let i = 0; i < 64; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (dir !== packageRoot && typeof pkg.name === 'string' && pkg.name) {
        return { name: pkg.name, version: typeof pkg.version === 'string' ? pkg.version : undefined };
      }
    } catch {
      // no (readable) package.json here: look further up
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const script = process.argv[1] ? basename(process.argv[1]).replace(/\.[cm]?[jt]s$/, '') : undefined;
  return { name: script || 'node', version: undefined };
}

const app = applicationIdentity();
native.setSdkIdentity(VERSION, app.name, app.version);

function parseReport(text) {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

/**
 * Delivers everything captured so far. Resolves to the pipeline's counters
 * (`captured`, `delivered`, the drops by reason) with `pending` (records
 * still queued when the wait ended) and `completed`.
 */
export async function flush({ timeoutMs } = {}) {
  captured = false;
  return parseReport(await native.flush(timeoutMs));
}

process.on('beforeExit', () => {
  // The event loop is empty: deliver what was captured. The flush runs on
  // libuv's thread pool, so this event fires again when it is done, with
  // nothing new captured, and the process exits.
  if (!captured) return;
  captured = false;
  native.flush().catch(() => {});
});

process.on('exit', () => {
  // process.exit() or the end after beforeExit: calls still open will
  // never end; record them as cancelled and deliver synchronously.
  for (const call of openCalls) {
    try {
      call.cancel();
    } catch {
      // ended meanwhile
    }
  }
  openCalls.clear();
  if (captured) {
    captured = false;
    native.flushSync();
  }
});

export { native };
