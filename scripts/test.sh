#!/usr/bin/env bash
# Runs every test. First installs what the tests drive, into
# target/test-venv and tests/clients/node_modules, at the versions pinned
# next to the tests: the official `openai` Python and npm clients (the
# proxy tests), pytest, and the anosys Python package itself, the wheel
# scripts/build-wheel.sh builds from this workspace (as the README gives).
# Then `cargo test`, the Python package's pytest suite and the Node.js
# package's node:test suite.
# Extra arguments go to cargo test (e.g. scripts/test.sh -p anosys-cli).
set -euo pipefail
cd "$(dirname "$0")/.."
# Marks each step with the seconds since the start (.ci/run's, when it runs
# this), so a log shows where the time goes.
export ANOSYS_CI_START=${ANOSYS_CI_START:-$(date +%s)}
mark() { echo "[test.sh +$(( $(date +%s) - ANOSYS_CI_START ))s] $*" >&2; }

clients=crates/anosys-cli/tests/clients
python_pkg=crates/anosys-python
venv=target/test-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
mark pip install
"${pip[@]}" -r "$clients/requirements.txt" -r "$python_pkg/tests/requirements.txt"
npm ci --prefix "$clients" --no-audit --no-fund --loglevel=error

# The viewer's browser tests drive Debian's headless Chromium through
# chromedriver (crates/anosys-cli/tests/ui_browser.rs): installed here when
# missing and this is Debian as root (as on CI); else install the packages
# chromium and chromium-driver yourself.
if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

mark cargo test
cargo test --workspace --all-features "$@"

# bench/all.py's goal column: its checks on rows of known figures.
mark bench self-test
python3 bench/all.py --self-test

# The Python package as users without Rust get it: the prebuilt abi3
# manylinux wheel scripts/build-wheel.sh makes (the one release build of
# the extension here; auditwheel checks its tag), installed from the file,
# then tested against the real openai client with no cargo or rustc on
# PATH, importing the installed package (tests/test_package.py checks).
mark wheel
built=$(scripts/build-wheel.sh)
"${pip[@]}" --force-reinstall --no-deps "$(head -n 1 <<<"$built")"
no_rust=(env PATH="$PWD/$venv/bin:/usr/bin:/bin")
if "${no_rust[@]}" sh -c 'command -v cargo || command -v rustc' >/dev/null; then
    echo "test.sh: cargo or rustc found on PATH=$PWD/$venv/bin:/usr/bin:/bin; the Python tests must run without Rust" >&2
    exit 1
fi
# tests/test_original_api.py puts the same questions to the original AnoSys
# SDK (anosys-sdk-core/-openai 1.0.14 from PyPI, in a venv of its own).
original_venv=target/original-venv
if [ ! -x "$original_venv/bin/python" ]; then
    python3 -m venv "$original_venv"
fi
"$original_venv/bin/python" -m pip install --quiet --disable-pip-version-check anosys-sdk-core==1.0.14 anosys-sdk-openai==1.0.14
mark pytest
(cd "$python_pkg" && ANOSYS_ORIGINAL_PYTHON="$PWD/../../$original_venv/bin/python" "${no_rust[@]}" "../../$venv/bin/python" -m pytest -q -p no:cacheprovider tests)

# The fault-injection scenarios (shortened; scripts/faults.sh runs them at
# full length): real app processes against a failing AnoSys stand-in, in a
# release build as applications run; scenario 8 (anosys-cli's
# faults_proxy) kills the proxy binary mid-load. One cargo command, so the
# release build of the engine is shared.
mark faults
faults_log=target/faults-short.log
if ! ANOSYS_FAULTS_PYTHON="$PWD/$venv/bin/python" cargo test --release -p anosys -p anosys-cli --all-features --test faults --test faults_proxy -- --include-ignored --test-threads=1 --nocapture >"$faults_log" 2>&1; then
    tail -n 60 "$faults_log"
    exit 1
fi
grep -E '^FAULTS\||FAULTS\||test result' "$faults_log"

# The Node.js package: `npm ci` installs its test dependencies (the openai
# npm client, TypeScript, protobufjs for the OTLP receiver) and, through
# the package's install step, builds the native addon with cargo; `npm run
# build` rebuilds it if this checkout changed since. Then node:test against
# the real openai client.
node_pkg=crates/anosys-node
mark node addon
npm ci --prefix "$node_pkg" --no-audit --no-fund --loglevel=error
npm run --prefix "$node_pkg" --silent build
mark node tests
npm test --prefix "$node_pkg"
# OpenTelemetry's @opentelemetry/instrumentation-openai (it patches openai
# <7 only) with AnosysSpanExporter: a small application of its own on
# openai 6, using this checkout's package (`"anosys": "file:.."`, the addon
# built above) and the stand-ins of the node:test suite.
otel_app=$node_pkg/tests-otel-openai
mark node otel app
npm ci --prefix "$otel_app" --no-audit --no-fund --loglevel=error
npm test --prefix "$otel_app"

# The npm tarballs (scripts/build-npm.sh, from the release build above:
# cargo has nothing left to build), installed in a fresh application with
# no Rust on PATH (the prebuilt addon comes from the platform package),
# then the same node:test suite, copied into the application so that
# `anosys` and the test dependencies are the installed ones.
npm_app=target/npm-app
mark npm tarballs
built_npm=$(scripts/build-npm.sh)
mapfile -t tarballs < <(tail -n 2 <<<"$built_npm")
rm -rf "$npm_app" && mkdir -p "$npm_app/bin"
no_rust=()
IFS=: read -ra path_dirs <<<"$PATH"
for dir in "${path_dirs[@]}"; do
    if [ -e "$dir/cargo" ] || [ -e "$dir/rustc" ]; then
        # A folder with Rust and other tools (e.g. /usr/bin): the others only.
        shim="$PWD/$npm_app/bin/${#no_rust[@]}"
        mkdir -p "$shim"
        for tool in "$dir"/*; do
            case "${tool##*/}" in cargo | cargo-* | rustc | rustdoc | rustup | rust-* | rustfmt | clippy-driver) ;; *) ln -s "$tool" "$shim/" ;; esac
        done
        dir=$shim
    fi
    no_rust+=("$dir")
done
no_rust_path=$(IFS=:; echo "${no_rust[*]}")
if env PATH="$no_rust_path" "$BASH" -c 'command -v cargo || command -v rustc'; then
    echo "test.sh: Rust is still on the PATH meant to have none" >&2
    exit 1
fi
pinned() { node -p "require('./$node_pkg/package.json').devDependencies['$1']"; }
test_deps=()
for dep in openai openai6 typescript protobufjs @opentelemetry/api @opentelemetry/sdk-trace-base @opentelemetry/context-async-hooks @opentelemetry/resources; do
    test_deps+=("$dep@$(pinned "$dep")")
done
repo=$PWD
(
    cd "$npm_app"
    export PATH="$no_rust_path"
    unset CARGO
    npm init -y >/dev/null
    npm install --no-audit --no-fund --loglevel=error --prefer-offline "${tarballs[@]}" "${test_deps[@]}"
    test ! -e node_modules/anosys/anosys.node
    test -f node_modules/anosys-linux-x64-gnu/anosys.linux-x64-gnu.node
    cp -r "$repo/$node_pkg/tests" tests
    export ANOSYS_TEST_WORKSPACE="$repo" ANOSYS_TEST_REPLIES="$repo/crates/anosys-cli/src/demo/replies.json"
    ANOSYS_TEST_PACKAGES="$(IFS=:; echo "${tarballs[*]}")" node --test --test-concurrency=1 tests/
)
mark done
