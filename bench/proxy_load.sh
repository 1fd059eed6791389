#!/usr/bin/env bash
# Load benchmark for the logging proxy, loopback only (127.0.0.1).
#
# Starts `anosys demo-server` (the upstream) and `anosys proxy` in front of
# it, then for plain and streaming chat completions, at each fixed request
# rate, runs the same bounded load against the upstream directly and through
# the proxy with oha. Prints p50/p99 latency, what the proxy adds, the proxy's
# memory (peak and final RSS) and how many records it stored.
#
#   bash bench/proxy_load.sh
#   RATES="100 500 1000" REQUESTS=3000 bash bench/proxy_load.sh
#
# Settings (environment):
#   RATES            request rates to test, requests/s        [100 500]
#   REQUESTS         requests per measured run                [1500]
#   WARMUP           unmeasured requests per target and kind  [50]
#   CONNECTIONS      oha connections                          [50]
#   FIRST_BYTE_MS    demo-server wait before each answer      [0]
#   EVENT_MS         demo-server wait between stream events   [0]
#   ANOSYS_BIN       use this binary instead of building      [build target/release/anosys]
#   KEEP_TMP=1       keep the temp dir (DB, logs, oha JSON)
set -euo pipefail

RATES=${RATES:-"100 500"}
REQUESTS=${REQUESTS:-1500}
WARMUP=${WARMUP:-50}
CONNECTIONS=${CONNECTIONS:-50}
FIRST_BYTE_MS=${FIRST_BYTE_MS:-0}
EVENT_MS=${EVENT_MS:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
START_TS=$(date +%s)

# Records must go to the local store only.
unset ANOSYS_API_KEY ANOSYS_API_URL ANOSYS_SINKS ANOSYS_JSONL_PATH ANOSYS_RESOLVER_URL \
    OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || true

log() { printf '[proxy_load] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in REQUESTS WARMUP CONNECTIONS FIRST_BYTE_MS EVENT_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
for r in $RATES; do
    [[ $r =~ ^[0-9]+$ && $r -gt 0 ]] || die "RATES must be positive whole numbers (got '$r')"
done
command -v python3 >/dev/null || die "python3 is needed (JSON parsing, sqlite3)"
command -v curl >/dev/null || die "curl is needed (readiness checks)"

# ---- 1. the load tool -------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v oha >/dev/null; then
    log "oha not found: cargo install oha --locked (takes several minutes on 2 cores)"
    timeout 1800 cargo install oha --locked >&2 || die "could not install oha"
fi
OHA=$(command -v oha)
log "load tool: $("$OHA" --version 2>/dev/null | head -1)"

# ---- 2. binary, servers -----------------------------------------------------
if [[ -n ${ANOSYS_BIN:-} ]]; then
    BIN=$ANOSYS_BIN
else
    log "building release binary"
    (cd "$ROOT" && cargo build --release -p anosys-cli --quiet) || die "build failed"
    BIN=$ROOT/target/release/anosys
fi
[[ -x $BIN ]] || die "no binary at $BIN"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/anosys-proxy-load.XXXXXX")
DEMO_PID=""
PROXY_PID=""
cleanup() {
    local pid
    for pid in "$PROXY_PID" "$DEMO_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL PID: poll until anything answers (any HTTP status), at most 10 s.
wait_http() {
    local url=$1 pid=$2 i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        if curl -s -o /dev/null -m 1 "$url"; then return 0; fi
        sleep 0.1
    done
    return 1
}

UP_PORT=$(free_port)
"$BIN" --color never --db "$TMP/demo.db" demo-server --listen "127.0.0.1:$UP_PORT" \
    --first-byte-ms "$FIRST_BYTE_MS" --event-ms "$EVENT_MS" >"$TMP/demo.log" 2>&1 &
DEMO_PID=$!
wait_http "http://127.0.0.1:$UP_PORT/" "$DEMO_PID" || { cat "$TMP/demo.log" >&2; die "demo-server did not start"; }

PROXY_PORT=$(free_port)
"$BIN" --color never --db "$TMP/proxy.db" proxy --listen "127.0.0.1:$PROXY_PORT" \
    --upstream "http://127.0.0.1:$UP_PORT" --quiet >"$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
wait_http "http://127.0.0.1:$PROXY_PORT/healthz" "$PROXY_PID" || { cat "$TMP/proxy.log" >&2; die "proxy did not start"; }
log "demo-server 127.0.0.1:$UP_PORT (pid $DEMO_PID), proxy 127.0.0.1:$PROXY_PORT (pid $PROXY_PID), temp $TMP"

proc_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PROXY_PID/status"; }
RSS_START_KB=$(proc_kb VmRSS)

BODY_PLAIN='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say this is a test"}]}'
BODY_STREAM='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say this is a test"}],"stream":true,"stream_options":{"include_usage":true}}'
PATH_CHAT=/v1/chat/completions

body_for() { if [[ $1 == plain ]]; then printf '%s' "$BODY_PLAIN"; else printf '%s' "$BODY_STREAM"; fi; }
base_for() { if [[ $1 == direct ]]; then echo "http://127.0.0.1:$UP_PORT"; else echo "http://127.0.0.1:$PROXY_PORT"; fi; }

# run_oha OUT N RATE(0 = unlimited) KIND TARGET: one bounded oha run, JSON to OUT.
run_oha() {
    local out=$1 n=$2 rate=$3 kind=$4 target=$5 limit
    local -a rate_args=()
    if [[ $rate -gt 0 ]]; then
        rate_args=(-q "$rate" --latency-correction)
        limit=$((n / rate * 3 + 30))
    else
        limit=60
    fi
    timeout --kill-after=5 "$limit" "$OHA" --no-tui -n "$n" -c "$CONNECTIONS" "${rate_args[@]}" \
        -t 10s -m POST -T application/json -d "$(body_for "$kind")" \
        --output-format json -o "$out" "$(base_for "$target")$PATH_CHAT" \
        || die "oha failed or exceeded ${limit}s ($kind, $target, rate $rate)"
}

# ---- 3. warm-up and measured runs -------------------------------------------
PROXY_REQUESTS=0
for kind in plain stream; do
    for target in direct proxy; do
        run_oha "$TMP/warmup-$kind-$target.json" "$WARMUP" 0 "$kind" "$target"
        if [[ $target == proxy ]]; then PROXY_REQUESTS=$((PROXY_REQUESTS + WARMUP)); fi
    done
done
log "warm-up done ($WARMUP requests per target and kind)"

for kind in plain stream; do
    for rate in $RATES; do
        for target in direct proxy; do
            log "$kind, $rate req/s, $target: $REQUESTS requests"
            run_oha "$TMP/run-$kind-$rate-$target.json" "$REQUESTS" "$rate" "$kind" "$target"
            if [[ $target == proxy ]]; then PROXY_REQUESTS=$((PROXY_REQUESTS + REQUESTS)); fi
        done
    done
done

# ---- 4. memory, then stop the proxy so every record is written ---------------
RSS_END_KB=$(proc_kb VmRSS)
HWM_KB=$(proc_kb VmHWM)
kill -TERM "$PROXY_PID"
for _ in $(seq 1 400); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PROXY_PID" 2>/dev/null; then
    log "proxy still running 40 s after SIGTERM; killing it"
    kill -KILL "$PROXY_PID" 2>/dev/null || true
fi
wait "$PROXY_PID" 2>/dev/null || true
PROXY_PID=""

# ---- 5. report --------------------------------------------------------------
RECORDS=$(python3 - "$TMP/proxy.db" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
print(con.execute("SELECT count(*) FROM records").fetchone()[0])
PY
)

python3 - "$TMP" "$RATES" "$REQUESTS" <<'PY'
import json, sys
tmp, rates, n = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])

def load(kind, rate, target):
    with open(f"{tmp}/run-{kind}-{rate}-{target}.json") as f:
        d = json.load(f)
    lat = d["latencyPercentiles"]  # seconds
    codes = d.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    non2xx = sum(codes.values()) - ok
    errors = sum(d.get("errorDistribution", {}).values())
    return {
        "p50": lat["p50"] * 1000 if lat.get("p50") is not None else float("nan"),
        "p99": lat["p99"] * 1000 if lat.get("p99") is not None else float("nan"),
        "rps": d["summary"].get("requestsPerSec") or 0.0,
        "bad": non2xx + errors,
    }

print(f"\nLatency in ms over {n} requests per run (oha, fixed rate, latency-corrected); "
      "added = proxy - direct, ratio = proxy / direct\n")
print("| kind | rate (req/s) | direct p50 | direct p99 | proxy p50 | proxy p99 "
      "| added p50 | added p99 | ratio p50 | ratio p99 | achieved req/s d / p | non-2xx+errors d / p |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for kind in ("plain", "stream"):
    for rate in rates:
        d, p = load(kind, rate, "direct"), load(kind, rate, "proxy")
        ratio = lambda k: p[k] / d[k] if d[k] > 0 else float("nan")
        print(f"| {kind} | {rate} | {d['p50']:.3f} | {d['p99']:.3f} | {p['p50']:.3f} | {p['p99']:.3f} "
              f"| {p['p50'] - d['p50']:+.3f} | {p['p99'] - d['p99']:+.3f} "
              f"| {ratio('p50'):.2f} | {ratio('p99'):.2f} "
              f"| {d['rps']:.0f} / {p['rps']:.0f} | {d['bad']} / {p['bad']} |")
PY

mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
echo
echo "Proxy memory: peak RSS (VmHWM) $(mib "$HWM_KB"), RSS after the runs $(mib "$RSS_END_KB"), RSS at start $(mib "$RSS_START_KB")"
echo "Records stored by the proxy: $RECORDS (requests sent through it: $PROXY_REQUESTS)"
echo "Total time: $(($(date +%s) - START_TS)) s"
tail -n 3 "$TMP/proxy.log" | sed 's/^/proxy log: /'
if [[ $RECORDS -ne $PROXY_REQUESTS ]]; then
    log "warning: $RECORDS records stored for $PROXY_REQUESTS requests"
fi
