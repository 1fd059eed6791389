#!/usr/bin/env bash
# Runs every test. First installs what the proxy tests drive: the official
# `openai` Python client (a virtualenv in target/test-venv) and the official
# `openai` npm client (crates/anosys-cli/tests/clients/node_modules), at the
# versions pinned next to the test scripts. Then `cargo test`.
# Extra arguments go to cargo test (e.g. scripts/test.sh -p anosys-cli).
set -euo pipefail
cd "$(dirname "$0")/.."

clients=crates/anosys-cli/tests/clients
if [ ! -x target/test-venv/bin/python ]; then
    python3 -m venv target/test-venv
fi
target/test-venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$clients/requirements.txt"
npm ci --prefix "$clients" --no-audit --no-fund --loglevel=error

cargo test --workspace --all-features "$@"
