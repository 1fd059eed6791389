#!/usr/bin/env node
// Builds the native addon (crates/anosys-node, napi-rs) with cargo and puts
// it next to package.json as `anosys.node`, the file lib/native.js loads.
//
//   node scripts/build-native.mjs               release build
//   node scripts/build-native.mjs --debug       faster to build, slower to run
//   node scripts/build-native.mjs --if-missing  (npm's install step) only when
//                                               there is no addon to load
//
// A path install (`npm install /path/to/anosys/crates/anosys-node`) links
// this folder into node_modules and runs the install step here, inside the
// Cargo workspace the addon is built from. Needs a Rust toolchain (cargo).
// An install from the npm tarballs (scripts/build-npm.sh) has the prebuilt
// addon in the platform package (anosys-linux-x64-gnu) and no Rust sources:
// there the install step does nothing and never needs cargo.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const target = join(root, 'anosys.node');
const args = new Set(process.argv.slice(2));

if (args.has('--if-missing')) {
  if (existsSync(target)) process.exit(0);
  // The platform package's prebuilt addon (an installed tarball, or a
  // checkout after scripts/build-npm.sh): nothing to build.
  const { platformPackage } = await import('../lib/platform.js');
  const name = platformPackage();
  try {
    const require = createRequire(join(root, 'package.json'));
    const manifest = require.resolve(`${name}/package.json`);
    const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
    if (existsSync(join(dirname(manifest), pkg.main))) process.exit(0);
  } catch {
    // not installed
  }
  // Not a checkout (an installed tarball): nothing to build from; the
  // loader (lib/native.js) will say what is missing when imported.
  if (!existsSync(join(root, 'Cargo.toml'))) {
    console.warn(`anosys: the prebuilt native addon for this platform (${name}) is not installed; importing anosys will fail until it is.`);
    process.exit(0);
  }
}

const cargo = process.env.CARGO || 'cargo';
const cargoArgs = ['build', '-p', 'anosys-node', '--lib', '--message-format=json-render-diagnostics'];
if (!args.has('--debug')) cargoArgs.push('--release');
if (process.env.ANOSYS_CARGO_LOCKED) cargoArgs.push('--locked');

const run = spawnSync(cargo, cargoArgs, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 });
if (run.error) {
  console.error(`anosys: could not run ${cargo} (${run.error.message}). Building the native addon needs a Rust toolchain: https://rustup.rs`);
  process.exit(1);
}
if (run.status !== 0) {
  console.error(`anosys: cargo build failed (exit ${run.status}); see the messages above.`);
  process.exit(run.status ?? 1);
}

let built;
for (const line of run.stdout.toString().split('\n')) {
  if (!line.startsWith('{')) continue;
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    continue;
  }
  if (message.reason === 'compiler-artifact' && message.target?.name === 'anosys_node') {
    built = message.filenames.find((f) => /\.(so|dylib|dll)$/.test(f));
  }
}
if (!built) {
  console.error('anosys: cargo did not report the anosys_node library it built.');
  process.exit(1);
}
// Copy then rename: a process that has the old addon loaded keeps its file.
copyFileSync(built, `${target}.tmp`);
renameSync(`${target}.tmp`, target);
console.error(`anosys: built ${target}`);
