#!/usr/bin/env bash
# Whole-system delivery benchmark (crates/anosys/benches/delivery.rs), with
# its baseline in the same run: the same benchmark built against the code
# before the delivery rework (lanes, durable outbox), commit 212314c.
#
#   bash scripts/bench-delivery.sh            # 3 interleaved rounds of 100,000 records
#   ROUNDS=5 ANOSYS_BENCH_RECORDS=50000 bash scripts/bench-delivery.sh
#
# The baseline is a git worktree of BASE_REV in BASE_DIR (default
# target/bench-delivery-base, created on first use) with its own target
# folder (BASE_TARGET_DIR; pointing it at this tree's `target` reuses the
# dependencies already built there). Loopback only: the AnoSys stand-in runs inside each benchmark
# process. Prints the median records/s of each and their ratios.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
base_rev=${BASE_REV:-212314c}
base_dir=${BASE_DIR:-$root/target/bench-delivery-base}
rounds=${ROUNDS:-3}
export ANOSYS_BENCH_RECORDS=${ANOSYS_BENCH_RECORDS:-100000}

if [ ! -d "$base_dir" ]; then
    git worktree add --detach "$base_dir" "$base_rev"
fi
# The benchmark is the same file in both trees; the baseline has no outbox
# (`--cfg anosys_bench_base` leaves the drain out).
cp crates/anosys/benches/delivery.rs "$base_dir/crates/anosys/benches/delivery.rs"
if ! grep -q 'name = "delivery"' "$base_dir/crates/anosys/Cargo.toml"; then
    printf '\n[[bench]]\nname = "delivery"\nharness = false\nrequired-features = ["sqlite"]\n' \
        >> "$base_dir/crates/anosys/Cargo.toml"
fi

executable() { # the benchmark binary named in cargo's JSON messages
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "delivery") | .executable // empty' | tail -n 1
}
echo "building the benchmark (this tree, then $base_rev) ..." >&2
new_bin=$(nice -n 10 cargo rustc -q -p anosys --profile bench --bench delivery --message-format=json | executable)
base_target=${BASE_TARGET_DIR:-$base_dir/target}
base_bin=$(cd "$base_dir" && CARGO_TARGET_DIR="$base_target" nice -n 10 cargo rustc -q -p anosys --profile bench \
    --bench delivery --message-format=json -- --cfg anosys_bench_base | executable)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$rounds"); do
    # Alternate which goes first, against drift.
    if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
    for which in $order; do
        if [ "$which" = base ]; then
            "$base_bin" --bench healthy | sed 's/^/base /' | tee -a "$out"
        else
            "$new_bin" --bench healthy | sed 's/^/new /' | tee -a "$out"
        fi
    done
    "$new_bin" --bench drain | sed 's/^/new /' | tee -a "$out"
done

python3 - "$out" "$base_rev" <<'EOF'
import re, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\w+) (\w+) records=(\d+) seconds=\S+ rate=(\d+)", line)
    if m:
        rates.setdefault((m[1], m[2]), []).append(int(m[4]))
med = {k: statistics.median(v) for k, v in rates.items()}
base, new, drain = med[("base", "healthy")], med[("new", "healthy")], med[("new", "drain")]
n = len(rates[("new", "drain")])
print(f"\nmedians of {n} rounds, records/s:")
print(f"  healthy path, {sys.argv[2]} (baseline): {base:.0f}")
print(f"  healthy path, this tree:           {new:.0f}  ratio {new / base:.2f}")
print(f"  outbox drain, this tree:           {drain:.0f}  ratio {drain / new:.2f} to this tree's healthy path")
EOF
