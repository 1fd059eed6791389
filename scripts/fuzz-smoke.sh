#!/usr/bin/env bash
# The fuzz smoke run (CI): builds the cargo-fuzz targets in fuzz/ and runs
# each for a few seconds, starting from its kept corpus in fuzz/corpus/.
# Exits non-zero if any target crashes (the input is left in
# fuzz/artifacts/<target>/). New inputs go to a scratch directory, so the
# kept corpora are not touched.
#
#   scripts/fuzz-smoke.sh              # every target, 5 seconds each
#   FUZZ_SECONDS=30 scripts/fuzz-smoke.sh sse encode
#   FUZZ_SANITIZER=none scripts/fuzz-smoke.sh    # cargo fuzz -s none
#
# CI runs the stable, uninstrumented counterpart instead: the fuzz_smoke
# test of anosys-cli (crates/anosys-cli/tests/fuzz_smoke.rs), which replays
# the same corpora through the same target bodies (fuzz/targets/) and adds
# blind mutations, without coverage feedback.
#
# Needs cargo-fuzz (installed from crates.io if missing) and takes the
# sanitizer flags on the stable toolchain through RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-5}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

sanitizer=(-s "${FUZZ_SANITIZER:-address}")
cargo fuzz build "${sanitizer[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "corpus/$t"
    echo "== fuzz $t: ${seconds}s from corpus/$t ($(ls "corpus/$t" | wc -l) inputs)"
    # The scratch directory comes first: libFuzzer writes new inputs there.
    if ! cargo fuzz run "${sanitizer[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
        tail -n 60 "$scratch/$t.log" >&2
        echo "fuzz target $t failed: see fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec)' "$scratch/$t.log" | tr '\n' ' '
    echo
done
