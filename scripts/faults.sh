#!/usr/bin/env bash
# The fault-injection scenarios at full length (60 s outages at 1,000
# records/s, 200 kill -9 points, the proxy killed 12 times under load,
# ...), in a release build, then their results as the README's table.
# Takes about 11 minutes.
#   scripts/faults.sh            all scenarios
#   scripts/faults.sh s5         the ones whose name contains s5
set -euo pipefail
cd "$(dirname "$0")/.."
log=target/faults-full.log
mkdir -p target
# Scenario 1 again through the Python package, when it is installed in the
# test virtualenv (scripts/test.sh installs it).
if [ -x target/test-venv/bin/python ] && target/test-venv/bin/python -c 'import anosys' 2>/dev/null; then
    export ANOSYS_FAULTS_PYTHON="$PWD/target/test-venv/bin/python"
fi
# Scenario 8 is anosys-cli's faults_proxy (the proxy binary killed mid-load).
ANOSYS_FAULTS=full cargo test --release -p anosys -p anosys-cli --all-features --test faults --test faults_proxy -- \
    --include-ignored --test-threads=1 --nocapture "$@" >"$log" 2>&1 || { tail -n 80 "$log"; exit 1; }
echo "| scenario | logged | delivered | duplicated | dropped (counted) | lost | peak memory (MiB) | notes |"
echo "|---|---|---|---|---|---|---|---|"
grep -o 'FAULTS|.*' "$log" | sed -e 's/^FAULTS//' -e 's/|/ | /g' -e 's/$/ |/' -e 's/^ //' -e 's/  */ /g'
grep 'test result' "$log"
