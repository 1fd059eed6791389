// Loads the native addon (crates/anosys-node, napi-rs), the first of:
//
// 1. a development build next to package.json, `anosys.node` (what
//    `npm run build` / scripts/build-native.mjs makes in a checkout, and
//    what a path install of the checkout builds);
// 2. the prebuilt addon of the platform package for this platform, CPU and
//    C library (`anosys-linux-x64-gnu`, an optional dependency npm installs
//    only where it fits);
// 3. else an Error that names the platform, the package it looked for and
//    how to build the addon from source.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { detectLibc, PREBUILT, platformPackage, platformTriple } from './platform.js';

export { detectLibc, PREBUILT, platformPackage, platformTriple };

const packageRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const REPOSITORY = 'https://github.com/anosys/anosys';

/**
 * Loads the addon. `options` exist for the tests: `root` (the folder of
 * package.json), `platform`, `arch`, `libc` and `require` (resolves the
 * platform package).
 */
export function loadNative({
  root = packageRoot,
  platform = process.platform,
  arch = process.arch,
  libc = detectLibc(platform),
  require = createRequire(join(root, 'package.json')),
} = {}) {
  const failures = [];

  const local = join(root, 'anosys.node');
  if (existsSync(local)) {
    try {
      return { addon: require(local), path: local };
    } catch (error) {
      failures.push(`${local}: ${error.message}`);
    }
  }

  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  const name = platformPackage(platform, arch, libc);
  let installed = false;
  try {
    const manifest = require.resolve(`${name}/package.json`);
    installed = true;
    const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
    if (pkg.version !== version) {
      failures.push(`${name} is version ${pkg.version}, anosys is ${version}: install ${name}@${version}`);
    } else {
      const path = join(dirname(manifest), pkg.main);
      return { addon: require(path), path };
    }
  } catch (error) {
    if (installed) failures.push(`${name}: ${error.message}`);
  }

  const libcText = libc ? ` (${libc})` : '';
  const triple = platformTriple(platform, arch, libc);
  const lines = [
    `anosys: no native addon for ${platform} ${arch}${libcText}: ` +
      (installed ? `the package ${name} is installed but could not be loaded.` : `the package ${name} is not installed.`),
    ...failures.map((f) => `  ${f}`),
    PREBUILT.includes(triple)
      ? `npm installs ${name} as an optional dependency of anosys: reinstall without --omit=optional / --no-optional ` +
        `(a lockfile made on another platform can leave it out), or install it: \`npm install ${name}@${version}\`, or its tarball \`target/npm/${name}-${version}.tgz\` from scripts/build-npm.sh in a checkout.`
      : `No prebuilt addon exists for ${triple} (prebuilt: ${PREBUILT.join(', ')}).`,
    `To build from source (needs a Rust toolchain, https://rustup.rs): in a checkout of ${REPOSITORY}, ` +
      `\`npm install /path/to/anosys/crates/anosys-node\` builds it with cargo (or \`npm run build\` in crates/anosys-node).`,
  ];
  const error = new Error(lines.join('\n'));
  error.code = 'ANOSYS_NATIVE_MISSING';
  throw error;
}

const loaded = loadNative();

/** The file the addon was loaded from. */
export const nativePath = loaded.path;

export default loaded.addon;
