// The README's install command, in an application of its own: the package
// is installed from the repository path (or, when ANOSYS_TEST_PACKAGES
// lists them, from the npm tarballs of scripts/build-npm.sh, as
// scripts/test.sh does with no Rust on PATH) next to the application's own
// `openai`, `new AnosysOpenAILogger()` finds that `openai` (not the one this
// package's tests use), and the resource names the application from its
// package.json.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Backend, runProcess, Upstream } from './servers.mjs';

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));
const packages = process.env.ANOSYS_TEST_PACKAGES ? process.env.ANOSYS_TEST_PACKAGES.split(delimiter) : [packageDir];
// The openai the suite itself uses (the pinned one), so npm finds it in its cache.
function openaiVersion() {
  // openai's exports do not list package.json: walk up from its entry point.
  for (let dir = dirname(createRequire(import.meta.url).resolve('openai')); dir !== dirname(dir); dir = dirname(dir)) {
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (pkg.name === 'openai') return pkg.version;
  }
  throw new Error('openai is not installed');
}

let backend;
let upstream;
let app;

before(async () => {
  backend = await Backend.start();
  upstream = await Upstream.start();
  app = mkdtempSync(join(tmpdir(), 'anosys-node-app-'));
});

after(async () => {
  await Promise.all([backend.close(), upstream.close()]);
  rmSync(app, { recursive: true, force: true });
});

const run = (command, args, options = {}) => runProcess(command, args, { cwd: app, timeoutMs: 180_000, ...options });

test(`npm install ${process.env.ANOSYS_TEST_PACKAGES ? 'the npm tarballs' : '<repo>/crates/anosys-node'}, then an app records its openai calls`, { timeout: 240_000 }, async () => {
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'billing-app', version: '2.3.4', private: true, type: 'module' }));
  const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...packages, `openai@${openaiVersion()}`]);
  assert.equal(install.code, 0, install.output);
  if (process.env.ANOSYS_TEST_PACKAGES) {
    // The prebuilt addon, from the platform package; nothing was built.
    const installed = join(app, 'node_modules', 'anosys');
    assert.ok(!existsSync(join(installed, 'anosys.node')), 'no local build in the installed package');
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules', 'anosys-linux-x64-gnu', 'package.json'), 'utf8'));
    assert.equal(manifest.version, JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).version);
  }

  writeFileSync(
    join(app, 'main.js'),
    `import OpenAI from 'openai';
import { AnosysOpenAILogger } from 'anosys';
const logger = new AnosysOpenAILogger();
if (!logger.instrumented) throw new Error('openai not found');
const client = new OpenAI({ apiKey: 'sk-app', baseURL: process.env.UPSTREAM + '/v1', maxRetries: 0 });
const reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say this is a test' }] });
console.log(reply.choices[0].message.content);
`,
  );
  const env = { ...process.env, UPSTREAM: upstream.url, ANOSYS_API_URL: `${backend.url}/log`, ANOSYS_DB: join(app, 'fallback.db') };
  delete env.ANOSYS_API_KEY;
  delete env.OTEL_SERVICE_NAME;
  const main = await run(process.execPath, ['main.js'], { env });
  assert.equal(main.code, 0, main.output);
  assert.match(main.output, /This is a test\./);

  // Delivered before the process exited (beforeExit), with no flush call.
  const records = backend.records().filter((r) => r.get('gen_ai.operation.name') === 'chat');
  assert.equal(records.length, 1);
  const resource = records[0].json('otel_resource');
  assert.equal(resource['service.name'], 'billing-app');
  assert.equal(resource['service.version'], '2.3.4');
  assert.equal(resource['telemetry.sdk.name'], 'anosys');
  assert.equal(resource['telemetry.sdk.language'], 'nodejs');
});
