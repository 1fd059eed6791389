// Loads the native addon built from crates/anosys-node (see
// scripts/build-native.mjs).

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);

let native;
try {
  native = require(join(root, 'anosys.node'));
} catch (error) {
  const e = new Error(
    `anosys: the native addon ${join(root, 'anosys.node')} could not be loaded (${error.message}). ` +
      `Build it with \`npm run build\` in ${root} (needs cargo).`,
  );
  e.cause = error;
  throw e;
}

export default native;
