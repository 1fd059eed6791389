// The npm metadata: one version (the Cargo workspace's) in both manifests
// and in the dependency on the platform package, and what npm shows. Run
// on the package `anosys` resolves to: this folder, or the installed
// tarballs (scripts/test.sh sets ANOSYS_TEST_WORKSPACE to the checkout).

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';

const packageDir = dirname(createRequire(import.meta.url).resolve('anosys/package.json'));
const workspace = process.env.ANOSYS_TEST_WORKSPACE || join(packageDir, '..', '..');
const read = (path) => JSON.parse(readFileSync(path, 'utf8'));
const pkg = read(join(packageDir, 'package.json'));

/** `key = "value"` of a TOML table in the root Cargo.toml. */
function cargoWorkspace(key) {
  const toml = readFileSync(join(workspace, 'Cargo.toml'), 'utf8');
  const table = toml.split(/^\[workspace\.package\]$/m)[1].split(/^\[/m)[0];
  return table.match(new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, 'm'))[1];
}

/** The platform package: installed next to anosys, else this checkout's folder. */
function platformManifest() {
  try {
    return read(createRequire(join(packageDir, 'package.json')).resolve('anosys-linux-x64-gnu/package.json'));
  } catch {
    return read(join(packageDir, 'npm', 'linux-x64-gnu', 'package.json'));
  }
}

test('both packages carry the Cargo workspace version, and anosys depends on its platform package at it', () => {
  assert.ok(existsSync(join(workspace, 'Cargo.toml')), `no Cargo workspace at ${workspace}`);
  const version = cargoWorkspace('version');
  const platform = platformManifest();
  assert.equal(pkg.version, version);
  assert.equal(platform.name, 'anosys-linux-x64-gnu');
  assert.equal(platform.version, version);
  assert.deepEqual(pkg.optionalDependencies, { 'anosys-linux-x64-gnu': version });
});

test('npm metadata: license, repository, types, engines, files, optional peers', () => {
  const license = cargoWorkspace('license');
  const repository = cargoWorkspace('repository');
  const platform = platformManifest();
  for (const manifest of [pkg, platform]) {
    assert.equal(manifest.license, license);
    assert.equal(manifest.repository.type, 'git');
    assert.equal(manifest.repository.url, `git+${repository}.git`);
    assert.match(manifest.engines.node, /^>=20\.19/);
  }
  assert.deepEqual([platform.os, platform.cpu, platform.libc], [['linux'], ['x64'], ['glibc']]);
  assert.equal(platform.main, 'anosys.linux-x64-gnu.node');
  assert.deepEqual(platform.files, ['anosys.linux-x64-gnu.node']);
  assert.equal(pkg.types, './index.d.ts');
  assert.equal(pkg.exports['.'].types, './index.d.ts');
  assert.ok(pkg.keywords.includes('opentelemetry'));
  for (const f of ['index.js', 'index.d.ts', 'lib/', 'README.md']) assert.ok(pkg.files.includes(f), f);
  assert.ok(!pkg.files.some((f) => /\.(node|rs|toml)$|^src\/?$/.test(f)), pkg.files.join(', '));
  for (const peer of ['openai', '@opentelemetry/api', '@opentelemetry/sdk-trace-base']) {
    assert.ok(pkg.peerDependencies[peer], peer);
    assert.equal(pkg.peerDependenciesMeta[peer]?.optional, true, peer);
  }
  assert.ok(existsSync(join(packageDir, 'README.md')));
});
