#!/usr/bin/env bash
# The long fuzz run (by hand, not CI): runs each cargo-fuzz target in fuzz/
# for a while, one at a time on one core, growing its kept corpus in
# fuzz/corpus/<target>/, then minimises the corpus (cargo fuzz cmin, and
# inputs over 8 KiB are dropped) and
# prints a table (target, inputs run, exec/s, crashes, corpus entries).
# Stops at the first crash (the input is left in fuzz/artifacts/<target>/).
#
#   scripts/fuzz-long.sh                         # every target, 10 minutes each
#   FUZZ_SECONDS=3600 scripts/fuzz-long.sh outbox_row
#   FUZZ_RUNS=2000000 scripts/fuzz-long.sh       # a number of inputs instead
#   FUZZ_SANITIZER=none scripts/fuzz-long.sh     # without AddressSanitizer
#   FUZZ_RUNS=3000000 FUZZ_RUNS_sse=100000 scripts/fuzz-long.sh   # per target
#
# FUZZ_SANITIZER goes to cargo fuzz's -s (address, the default, or none,
# memory, thread, leak): `none` runs the safe-Rust targets several times
# faster (Rust's own checks, debug assertions and overflow checks included,
# still panic); `address` also catches memory errors in unsafe and C code.
#
# Commit the changed corpora afterwards (git add fuzz/corpus).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
# The limit for target $1: FUZZ_RUNS_<target> or FUZZ_SECONDS_<target> if
# set, else FUZZ_RUNS or FUZZ_SECONDS (10 minutes by default).
limit_for() {
    local runs="FUZZ_RUNS_$1" seconds="FUZZ_SECONDS_$1"
    if [ -n "${!runs:-}" ]; then
        echo "-runs=${!runs}"
    elif [ -n "${!seconds:-}" ]; then
        echo "-max_total_time=${!seconds}"
    elif [ -n "${FUZZ_RUNS:-}" ]; then
        echo "-runs=$FUZZ_RUNS"
    else
        echo "-max_total_time=${FUZZ_SECONDS:-600}"
    fi
}

sanitizer=(-s "${FUZZ_SANITIZER:-address}")
nice -n 10 cargo fuzz build "${sanitizer[@]}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
rows=()
total=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    limit=("$(limit_for "$t")")
    echo "== fuzz $t (${limit[*]}, ${sanitizer[*]})"
    status=0
    nice -n 10 cargo fuzz run "${sanitizer[@]}" "$t" "corpus/$t" -- "${limit[@]}" -print_final_stats=1 \
        >"$logs/$t.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -n 1)
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$logs/$t.log" >&2
        echo "fuzz target $t crashed: see fuzz/artifacts/$t/" >&2
        exit 1
    fi
    nice -n 10 cargo fuzz cmin "${sanitizer[@]}" "$t" "corpus/$t" >"$logs/$t.cmin.log" 2>&1
    # Inputs over 8 KiB are dropped, to keep the corpora in the repo small.
    find "corpus/$t" -type f -size +8k -delete
    entries=$(ls "corpus/$t" | wc -l)
    total=$((total + ${runs:-0}))
    rows+=("| \`$t\` | ${runs:-?} | ${speed:-?} | 0 | $entries |")
    echo "   $t: ${runs:-?} inputs, ${speed:-?} exec/s, $entries corpus entries"
done
echo
echo "| target | inputs | exec/s | crashes | corpus entries |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo "total: $total inputs; corpora: $(du -sh corpus | cut -f1)"
