// The native addon's loader (lib/native.js): a development build next to
// package.json, else the platform package (anosys-linux-x64-gnu), else an
// Error that says what is missing. The package under test is the one
// `anosys` resolves to (this folder, or the installed package when the
// suite runs from an application; scripts/test.sh does both).

import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { runProcess } from './servers.mjs';

const packageDir = dirname(createRequire(import.meta.url).resolve('anosys/package.json'));
const { detectLibc, loadNative, nativePath, platformPackage } = await import(pathToFileURL(join(packageDir, 'lib', 'native.js')).href);
const VERSION = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).version;
const LIBC = detectLibc();

let app;

before(() => {
  app = mkdtempSync(join(tmpdir(), 'anosys-node-loader-'));
});

after(() => rmSync(app, { recursive: true, force: true }));

/** A copy of the package's JavaScript (no addon) in `app`/node_modules/anosys. */
function copyPackage() {
  const dest = join(app, 'node_modules', 'anosys');
  mkdirSync(dest, { recursive: true });
  for (const f of ['package.json', 'index.js', 'index.d.ts']) copyFileSync(join(packageDir, f), join(dest, f));
  cpSync(join(packageDir, 'lib'), join(dest, 'lib'), { recursive: true });
  cpSync(join(packageDir, 'scripts'), join(dest, 'scripts'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'loader-app', version: '1.0.0', private: true, type: 'module' }));
  return dest;
}

const importAnosys = () =>
  runProcess(
    process.execPath,
    ['--input-type=module', '-e', "const a = await import('anosys'); console.log('loaded', a.VERSION, typeof a.counters().captured);"],
    { cwd: app, env: { ...process.env, ANOSYS_DB: join(app, 'fallback.db') }, timeoutMs: 30_000 },
  );

test('the addon loaded is the local build, else the platform package', () => {
  const local = join(packageDir, 'anosys.node');
  if (existsSync(local)) {
    assert.equal(nativePath, local);
  } else {
    const manifest = createRequire(join(packageDir, 'package.json')).resolve(`${platformPackage()}/package.json`);
    assert.equal(nativePath, join(dirname(manifest), JSON.parse(readFileSync(manifest, 'utf8')).main));
  }
});

test('no addon and no platform package: the error names the platform, the package and how to build', async () => {
  copyPackage();
  const run = await importAnosys();
  assert.notEqual(run.code, 0, run.output);
  const name = platformPackage();
  assert.match(run.stderr, /ANOSYS_NATIVE_MISSING|no native addon/);
  assert.ok(run.stderr.includes(`no native addon for ${process.platform} ${process.arch}${LIBC ? ` (${LIBC})` : ''}`), run.stderr);
  assert.ok(run.stderr.includes(`the package ${name} is not installed`), run.stderr);
  assert.ok(run.stderr.includes('needs a Rust toolchain'), run.stderr);
  assert.ok(run.stderr.includes('npm install /path/to/anosys/crates/anosys-node'), run.stderr);
});

test('the platform package next to it is loaded (prebuilt addon, no local build)', async () => {
  copyPackage();
  const name = platformPackage();
  const dest = join(app, 'node_modules', name);
  mkdirSync(dest, { recursive: true });
  const main = `anosys.${name.slice('anosys-'.length)}.node`;
  writeFileSync(join(dest, 'package.json'), JSON.stringify({ name, version: VERSION, main }));
  copyFileSync(nativePath, join(dest, main));
  const run = await importAnosys();
  assert.equal(run.code, 0, run.output);
  assert.match(run.stdout, new RegExp(`^loaded ${VERSION.replaceAll('.', '\\.')} number$`, 'm'));

  // Another version of the platform package is refused, by name.
  writeFileSync(join(dest, 'package.json'), JSON.stringify({ name, version: '0.0.0-other', main }));
  const stale = await importAnosys();
  assert.notEqual(stale.code, 0, stale.output);
  assert.ok(stale.stderr.includes(`the package ${name} is installed but could not be loaded`), stale.stderr);
  assert.ok(stale.stderr.includes(`${name} is version 0.0.0-other, anosys is ${VERSION}`), stale.stderr);
  rmSync(dest, { recursive: true, force: true });
});

test('other platforms: the message names them and the package they would need', () => {
  const root = copyPackage();
  const require = createRequire(join(app, 'package.json'));
  for (const [platform, arch, libc, name] of [
    ['linux', 'arm64', 'musl', 'anosys-linux-arm64-musl'],
    ['linux', 'x64', 'musl', 'anosys-linux-x64-musl'],
    ['darwin', 'arm64', undefined, 'anosys-darwin-arm64'],
    ['win32', 'x64', undefined, 'anosys-win32-x64-msvc'],
  ]) {
    assert.throws(
      () => loadNative({ root, platform, arch, libc, require }),
      (error) => {
        assert.equal(error.code, 'ANOSYS_NATIVE_MISSING');
        const where = `${platform} ${arch}${libc ? ` (${libc})` : ''}`;
        assert.ok(error.message.includes(`no native addon for ${where}: the package ${name} is not installed`), error.message);
        assert.ok(error.message.includes('No prebuilt addon exists for'), error.message);
        assert.ok(error.message.includes('https://rustup.rs'), error.message);
        return true;
      },
    );
  }
});

test('the install step of an installed tarball never runs cargo: silent with the platform package, a warning without', async () => {
  const dest = copyPackage();
  const name = platformPackage();
  // CARGO pointed at a tool that fails: a build attempt would fail the step.
  const install = () =>
    runProcess(process.execPath, [join(dest, 'scripts', 'build-native.mjs'), '--if-missing'], {
      cwd: dest,
      env: { ...process.env, CARGO: '/bin/false' },
      timeoutMs: 30_000,
    });
  const without = await install();
  assert.equal(without.code, 0, without.output);
  assert.ok(without.stderr.includes(`the prebuilt native addon for this platform (${name}) is not installed`), without.stderr);

  const platformDir = join(app, 'node_modules', name);
  mkdirSync(platformDir, { recursive: true });
  writeFileSync(join(platformDir, 'package.json'), JSON.stringify({ name, version: VERSION, main: 'addon.node' }));
  writeFileSync(join(platformDir, 'addon.node'), '');
  const withPackage = await install();
  assert.equal(withPackage.code, 0, withPackage.output);
  assert.equal(withPackage.output, '');
  rmSync(platformDir, { recursive: true, force: true });
});
