// The platform package names of the napi-rs layout (used by lib/native.js
// and scripts/build-native.mjs; loads nothing).

import { readFileSync } from 'node:fs';

/** The platform packages scripts/build-npm.sh builds (platform-arch-abi). */
export const PREBUILT = ['linux-x64-gnu'];

/** `glibc` or `musl` on Linux (undefined elsewhere). */
export function detectLibc(platform = process.platform) {
  if (platform !== 'linux') return undefined;
  try {
    // Alpine and other musl systems ship ldd as a musl script or link.
    if (readFileSync('/usr/bin/ldd', 'latin1').includes('musl')) return 'musl';
  } catch {
    // no ldd: ask Node below
  }
  try {
    const report = process.report?.getReport?.();
    const header = typeof report === 'string' ? JSON.parse(report).header : report?.header;
    if (header) return header.glibcVersionRuntime ? 'glibc' : 'musl';
  } catch {
    // no report: assume the common case
  }
  return 'glibc';
}

/** The napi-rs name of a platform: `linux-x64-gnu`, `linux-arm64-musl`, `darwin-arm64`, `win32-x64-msvc`. */
export function platformTriple(platform = process.platform, arch = process.arch, libc = detectLibc(platform)) {
  if (platform === 'linux') return `${platform}-${arch}-${libc === 'musl' ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `${platform}-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** The platform package that holds the prebuilt addon for a platform. */
export function platformPackage(platform, arch, libc) {
  return `anosys-${platformTriple(platform, arch, libc)}`;
}
