#!/usr/bin/env bash
# Load benchmark for the logging proxy, side by side with nginx and LiteLLM,
# loopback only (127.0.0.1).
#
# One upstream, `anosys demo-server`, and in front of it, each on its own
# port: nginx as a plain pass-through proxy (Debian's nginx-light: the floor
# for a proxy hop), a pass-through built from our proxy's own HTTP stack
# with nothing captured (the `bare_proxy` example: the floor for that
# stack), `anosys proxy` (capture on, SQLite store) and LiteLLM's proxy
# (optional: installed into target/litellm-venv; skipped with a message if
# it cannot be). For plain and streamed chat completions, at
# each fixed rate, the same bounded load goes to the upstream alone and
# through each proxy, in two shapes:
#
#   even   oha -q RATE: requests evenly spaced (latency-corrected)
#   burst  hey -q: BURST_CONNECTIONS connections each firing at RATE/N,
#          so requests arrive together; hey also gives the time to first
#          byte (for streams: the first event)
#
# Then, apart (its own CPU figures), a chat that carries its history: the
# request holds 61 earlier messages, about 41 KB of JSON, as an agent's or
# a long conversation's requests do (the runs above send one short
# message). Even load at HISTORY_RATE, upstream alone, nginx and ours.
#
# For each proxy it prints the added p50/p99 (vs the upstream alone, same
# shape, same rate), the CPU per request (utime+stime from /proc before and
# after the runs, the proxy's processes only) and the peak RSS.
#
#   bash bench/proxy_load.sh                              # ~4 minutes
#   RATES="100 500 1000" REQUESTS=3000 bash bench/proxy_load.sh
#
# Settings (environment):
#   RATES              request rates, requests/s               [100 500 1000]
#   REQUESTS           requests per measured run               [1000]
#   RUN_SECONDS        at most this many seconds' worth of requests a
#                      run at a set rate (0: no cap); bench/all.py sets 6,
#                      so a run at 100 req/s sends 600    [0]
#   WARMUP             unmeasured requests per target and kind [100]
#   CONNECTIONS        oha connections (even)                  [10]
#   BURST_CONNECTIONS  hey connections (burst)                 [10]
#   TARGETS            which proxies: nginx, anosys, litellm,
#                      before (a second `anosys proxy` from BEFORE_BIN,
#                      e.g. an older build, for before/after), and bare (a
#                      pass-through on the proxy's own stack, no capture:
#                      the `bare_proxy` example; the floor of that stack)
#                                                              [nginx bare anosys litellm]
#   LITELLM_REQUESTS   requests per LiteLLM run (it is slow)   [300]
#   HISTORY_REQUESTS   requests per run with a 41 KB history (0: none) [1000]
#   HISTORY_RATE       their rate, requests/s                   [100]
#   SATURATE_REQUESTS  requests at no set rate, on SATURATE_CONNECTIONS
#                      connections, to each proxy but LiteLLM: its
#                      throughput saturated, and every record still
#                      stored (0: none)                          [20000]
#   SATURATE_CONNECTIONS  their connections                     [100]
#   ANOSYS_ARGS        extra `anosys proxy` flags              []
#   FIRST_BYTE_MS      demo-server wait before each answer     [0]
#   EVENT_MS           demo-server wait between stream events  [0]
#   ANOSYS_BIN         use this binary instead of building     [build target/release/anosys]
#   KEEP_TMP=1         keep the temp dir (DB, logs, load-tool output)
set -euo pipefail

RATES=${RATES:-"100 500 1000"}
REQUESTS=${REQUESTS:-1000}
RUN_SECONDS=${RUN_SECONDS:-0}
WARMUP=${WARMUP:-100}
CONNECTIONS=${CONNECTIONS:-10}
BURST_CONNECTIONS=${BURST_CONNECTIONS:-10}
TARGETS=${TARGETS:-"nginx bare anosys litellm"}
LITELLM_REQUESTS=${LITELLM_REQUESTS:-300}
HISTORY_REQUESTS=${HISTORY_REQUESTS:-1000}
HISTORY_RATE=${HISTORY_RATE:-100}
SATURATE_REQUESTS=${SATURATE_REQUESTS:-20000}
SATURATE_CONNECTIONS=${SATURATE_CONNECTIONS:-100}
ANOSYS_ARGS=${ANOSYS_ARGS:-}
FIRST_BYTE_MS=${FIRST_BYTE_MS:-0}
EVENT_MS=${EVENT_MS:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The bearer token every request carries: LiteLLM's master key (it refuses
# to start without a strong one); the upstream and the others ignore it.
BENCH_KEY="sk-bench-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
START_TS=$(date +%s)

# Records must go to the local store only.
unset ANOSYS_API_KEY ANOSYS_API_URL ANOSYS_SINKS ANOSYS_JSONL_PATH ANOSYS_RESOLVER_URL \
    OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || true

log() { printf '[proxy_load] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in REQUESTS RUN_SECONDS WARMUP CONNECTIONS BURST_CONNECTIONS LITELLM_REQUESTS HISTORY_REQUESTS HISTORY_RATE SATURATE_REQUESTS SATURATE_CONNECTIONS FIRST_BYTE_MS EVENT_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
for r in $RATES; do
    [[ $r =~ ^[0-9]+$ && $r -gt 0 ]] || die "RATES must be positive whole numbers (got '$r')"
done
command -v python3 >/dev/null || die "python3 is needed (JSON parsing, sqlite3)"
command -v curl >/dev/null || die "curl is needed (readiness checks)"

# ---- 1. tools ---------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v oha >/dev/null; then
    log "oha not found: cargo install oha --locked (takes several minutes on 2 cores)"
    timeout 1800 cargo install oha --locked >&2 || die "could not install oha"
fi
if ! command -v hey >/dev/null || { [[ " $TARGETS " == *" nginx "* ]] && ! command -v nginx >/dev/null; }; then
    log "installing hey and nginx-light (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey nginx-light; } >&2 \
        || die "could not install hey and nginx-light (apt-get install hey nginx-light)"
fi
OHA=$(command -v oha)
HEY=$(command -v hey)
log "load tools: $("$OHA" --version 2>/dev/null | head -1), hey"

if [[ -n ${ANOSYS_BIN:-} ]]; then
    BIN=$ANOSYS_BIN
else
    log "building release binary"
    (cd "$ROOT" && cargo build --release -p anosys-cli --quiet) || die "build failed"
    BIN=$ROOT/target/release/anosys
fi
[[ -x $BIN ]] || die "no binary at $BIN"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/anosys-proxy-load.XXXXXX")
# The processes of a target: the main one and its children (nginx workers).
pids_of() {
    local p=$1 c
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do pids_of "$c"; done
}
declare -A PID=()
cleanup() {
    local t pid all
    for t in "${!PID[@]}"; do
        pid=${PID[$t]}
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            all=$(pids_of "$pid")
            # shellcheck disable=SC2086
            kill $all 2>/dev/null || true
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

# wait_http URL PID SECONDS: poll until anything answers (any HTTP status).
wait_http() {
    local url=$1 pid=$2 secs=${3:-10} i
    for i in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        if curl -s -o /dev/null -m 1 "$url"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- 2. the upstream and the proxies ------------------------------------------
declare -A PORT=()
PORT[direct]=$(free_port)
"$BIN" --color never --db "$TMP/demo.db" demo-server --listen "127.0.0.1:${PORT[direct]}" \
    --first-byte-ms "$FIRST_BYTE_MS" --event-ms "$EVENT_MS" >"$TMP/demo.log" 2>&1 &
PID[direct]=$!
wait_http "http://127.0.0.1:${PORT[direct]}/" "${PID[direct]}" || { cat "$TMP/demo.log" >&2; die "demo-server did not start"; }
UPSTREAM="http://127.0.0.1:${PORT[direct]}"
ACTIVE=(direct)

start_nginx() {
    command -v nginx >/dev/null || { log "nginx not found: skipped"; return 1; }
    local dir=$ROOT/target/bench-nginx
    rm -rf "$dir" && mkdir -p "$dir/logs" "$dir/tmp"
    PORT[nginx]=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # Request bodies up to 1 MiB stay in memory: with the default (16 KB)
    # a chat with its history is written to a temporary file first, and
    # the upstream sees it about 40 ms later.
    client_body_buffer_size 1m;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream demo { server 127.0.0.1:${PORT[direct]}; keepalive 32; }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://demo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf" >"$TMP/nginx.log" 2>&1 &
    PID[nginx]=$!
    wait_http "http://127.0.0.1:${PORT[nginx]}/" "${PID[nginx]}" || { cat "$TMP/nginx.log" "$dir/logs/error.log" >&2; log "nginx did not start: skipped"; return 1; }
}

# start_bare: the `bare_proxy` example (hyper's server and pooled client,
# tokio, mimalloc, as `anosys proxy`; nothing captured).
start_bare() {
    local bin=$ROOT/target/release/examples/bare_proxy
    if [[ -z ${ANOSYS_BIN:-} || ! -x $bin ]]; then
        (cd "$ROOT" && cargo build --release -p anosys-cli --example bare_proxy --quiet) || die "bare_proxy build failed"
    fi
    PORT[bare]=$(free_port)
    "$bin" "127.0.0.1:${PORT[bare]}" "$UPSTREAM" >"$TMP/bare.log" 2>&1 &
    PID[bare]=$!
    wait_http "http://127.0.0.1:${PORT[bare]}/" "${PID[bare]}" || { cat "$TMP/bare.log" >&2; die "bare_proxy did not start"; }
}

# start_anosys NAME BINARY: `anosys proxy`, capture on, its own SQLite store.
start_anosys() {
    local name=$1 bin=$2
    PORT[$name]=$(free_port)
    # shellcheck disable=SC2086
    "$bin" --color never --db "$TMP/$name.db" proxy --listen "127.0.0.1:${PORT[$name]}" \
        --upstream "$UPSTREAM" $ANOSYS_ARGS >"$TMP/$name.log" 2>"$TMP/$name.err" &
    PID[$name]=$!
    wait_http "http://127.0.0.1:${PORT[$name]}/healthz" "${PID[$name]}" || { cat "$TMP/$name.err" >&2; die "$name did not start"; }
}

start_litellm() {
    local venv=$ROOT/target/litellm-venv
    if [[ ! -x $venv/bin/litellm ]]; then
        log "installing LiteLLM's proxy into $venv (pip install 'litellm[proxy]')"
        { python3 -m venv "$venv" && timeout 900 "$venv/bin/pip" install -q 'litellm[proxy]'; } >"$TMP/litellm-install.log" 2>&1 \
            || { tail -5 "$TMP/litellm-install.log" >&2; log "LiteLLM could not be installed: skipped"; return 1; }
    fi
    PORT[litellm]=$(free_port)
    cat >"$TMP/litellm.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: $UPSTREAM/v1
      api_key: sk-bench-not-a-key
litellm_settings:
  telemetry: false
EOF
    LITELLM_MASTER_KEY=$BENCH_KEY LITELLM_LOG=ERROR LITELLM_TELEMETRY=False DISABLE_SCHEMA_UPDATE=True \
        "$venv/bin/litellm" --config "$TMP/litellm.yaml" --host 127.0.0.1 --port "${PORT[litellm]}" --num_workers 1 \
        >"$TMP/litellm.log" 2>&1 &
    PID[litellm]=$!
    wait_http "http://127.0.0.1:${PORT[litellm]}/health/liveliness" "${PID[litellm]}" 180 \
        || { tail -20 "$TMP/litellm.log" >&2; log "LiteLLM did not start: skipped"; return 1; }
}

for t in $TARGETS; do
    case $t in
        nginx) start_nginx && ACTIVE+=(nginx) || true ;;
        anosys) start_anosys anosys "$BIN" && ACTIVE+=(anosys) ;;
        before) [[ -x ${BEFORE_BIN:-} ]] || die "target 'before' needs BEFORE_BIN=path/to/older/anosys"
            start_anosys before "$BEFORE_BIN" && ACTIVE+=(before) ;;
        litellm) start_litellm && ACTIVE+=(litellm) || true ;;
        bare) start_bare && ACTIVE+=(bare) ;;
        *) die "unknown target $t (nginx, anosys, before, litellm, bare)" ;;
    esac
done
log "upstream $UPSTREAM; measuring: ${ACTIVE[*]}; temp $TMP"

# sum_over TARGET FILE AWK: a figure of /proc/PID/FILE, summed over a
# target's processes.
sum_over() {
    local total=0 p s
    for p in $(pids_of "${PID[$1]}"); do
        s=$(awk "$3" "/proc/$p/$2" 2>/dev/null || echo 0)
        total=$((total + ${s:-0}))
    done
    echo "$total"
}
# CPU ticks (utime+stime); peak RSS (VmHWM) in KiB.
cpu_ticks() { sum_over "$1" stat '{print $14 + $15}'; }
hwm_kb() { sum_over "$1" status '$1 == "VmHWM:" {print $2}'; }

BODY_PLAIN='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say this is a test"}]}'
BODY_STREAM='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say this is a test"}],"stream":true,"stream_options":{"include_usage":true}}'
# A chat with its history: 61 messages (a system prompt, then users and
# assistants in turn), about 41 KB.
python3 - >"$TMP/history.json" <<'PY'
import json
messages = [{"role": "system", "content": "You are a helpful assistant. " * 20}]
for i in range(60):
    text = f'Message number {i} with some text about the weather and "quotes" and more text. ' * 8
    messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
print(json.dumps({"model": "gpt-4o-mini", "messages": messages}))
PY
body_for() {
    case $1 in
        plain) printf '%s' "$BODY_PLAIN" ;;
        stream) printf '%s' "$BODY_STREAM" ;;
        history) cat "$TMP/history.json" ;;
    esac
}
url_for() { echo "http://127.0.0.1:${PORT[$1]}/v1/chat/completions"; }
# capped N RATE: N, or fewer when RUN_SECONDS caps a run at RATE.
capped() { if [[ $RUN_SECONDS -gt 0 && $(($2 * RUN_SECONDS)) -lt $1 ]]; then echo $(($2 * RUN_SECONDS)); else echo "$1"; fi; }
# count_for TARGET RATE: the requests of one measured run.
count_for() { if [[ $1 == litellm ]]; then capped "$LITELLM_REQUESTS" "$2"; else capped "$REQUESTS" "$2"; fi; }

# run_oha OUT N RATE(0 = unlimited) KIND TARGET [CONNECTIONS]: one bounded oha run.
run_oha() {
    local out=$1 n=$2 rate=$3 kind=$4 target=$5 connections=${6:-$CONNECTIONS} limit
    local -a rate_args=()
    if [[ $rate -gt 0 ]]; then rate_args=(-q "$rate" --latency-correction); limit=$((n / rate * 4 + 60)); else limit=120; fi
    timeout --kill-after=5 "$limit" "$OHA" --no-tui -n "$n" -c "$connections" "${rate_args[@]}" \
        -t 20s -m POST -T application/json -H "authorization: Bearer $BENCH_KEY" -d "$(body_for "$kind")" \
        --output-format json -o "$out" "$(url_for "$target")" >/dev/null 2>"$out.err" \
        || log "oha failed or exceeded ${limit}s ($kind, $target, rate $rate)"
}

# run_hey OUT N RATE KIND TARGET: bursts: BURST_CONNECTIONS workers, each at RATE/N.
run_hey() {
    local out=$1 n=$2 rate=$3 kind=$4 target=$5 c=$BURST_CONNECTIONS limit q
    q=$(( (rate + c - 1) / c ))
    limit=$((n / rate * 4 + 60))
    timeout --kill-after=5 "$limit" "$HEY" -n "$n" -c "$c" -q "$q" -t 20 -m POST -T application/json \
        -H "authorization: Bearer $BENCH_KEY" -d "$(body_for "$kind")" -o csv "$(url_for "$target")" \
        >"$out" 2>"$out.err" || log "hey failed or exceeded ${limit}s ($kind, $target, rate $rate)"
}

# ---- 3. warm-up, then the measured runs ------------------------------------------
for target in "${ACTIVE[@]}"; do
    for kind in plain stream; do run_oha "$TMP/warmup-$kind-$target.json" "$WARMUP" 0 "$kind" "$target"; done
done
log "warm-up done ($WARMUP requests per target and kind)"

declare -A CPU0=() SENT=()
for target in "${ACTIVE[@]}"; do CPU0[$target]=$(cpu_ticks "$target"); SENT[$target]=0; done
for kind in plain stream; do
    for rate in $RATES; do
        for shape in even burst; do
            for target in "${ACTIVE[@]}"; do
                n=$(count_for "$target" "$rate")
                log "$kind, $rate req/s, $shape, $target: $n requests"
                if [[ $shape == even ]]; then
                    run_oha "$TMP/run-$kind-$rate-$shape-$target.json" "$n" "$rate" "$kind" "$target"
                else
                    run_hey "$TMP/run-$kind-$rate-$shape-$target.csv" "$n" "$rate" "$kind" "$target"
                fi
                SENT[$target]=$((SENT[$target] + n))
            done
        done
    done
done

# ---- 4. CPU and memory, then stop our proxy so every record is written -------------
TICK=$(getconf CLK_TCK)
# usage FILE: each target's CPU ticks since CPU0, requests (SENT) and peak RSS.
usage() {
    : >"$1"
    # The upstream serves every request, through whichever proxy.
    local target
    for target in "${ACTIVE[@]}"; do [[ $target == direct ]] || SENT[direct]=$((SENT[direct] + SENT[$target])); done
    for target in "${ACTIVE[@]}"; do
        echo "$target $(( $(cpu_ticks "$target") - CPU0[$target] )) ${SENT[$target]} $(hwm_kb "$target")" >>"$1"
    done
}
usage "$TMP/resources.txt"
# Records each proxy must have stored at the end.
declare -A EXPECTED=()
for target in "${ACTIVE[@]}"; do EXPECTED[$target]=$((SENT[$target] + 2 * WARMUP)); done

# The chat with a history, its CPU counted apart (LiteLLM is left out: it
# is slow, and the figures above already place it).
HISTORY_TARGETS=()
for target in "${ACTIVE[@]}"; do [[ $target == litellm ]] || HISTORY_TARGETS+=("$target"); done
HISTORY_REQUESTS=$(capped "$HISTORY_REQUESTS" "$HISTORY_RATE")
if [[ $HISTORY_REQUESTS -gt 0 ]]; then
    HISTORY_WARMUP=$(( WARMUP < 50 ? WARMUP : 50 ))
    for target in "${HISTORY_TARGETS[@]}"; do
        run_oha "$TMP/warmup-history-$target.json" "$HISTORY_WARMUP" 0 history "$target"
        EXPECTED[$target]=$(( ${EXPECTED[$target]:-0} + HISTORY_WARMUP ))
    done
    for target in "${ACTIVE[@]}"; do CPU0[$target]=$(cpu_ticks "$target"); SENT[$target]=0; done
    for target in "${HISTORY_TARGETS[@]}"; do
        log "history (41 KB), $HISTORY_RATE req/s, even, $target: $HISTORY_REQUESTS requests"
        run_oha "$TMP/run-history-$HISTORY_RATE-even-$target.json" "$HISTORY_REQUESTS" "$HISTORY_RATE" history "$target"
        SENT[$target]=$HISTORY_REQUESTS
        EXPECTED[$target]=$(( ${EXPECTED[$target]:-0} + HISTORY_REQUESTS ))
    done
    usage "$TMP/resources-history.txt"
fi
# Saturated: as many requests as each proxy takes, on many connections.
# The records must all be stored still (checked below with the rest).
if [[ $SATURATE_REQUESTS -gt 0 ]]; then
    for target in "${HISTORY_TARGETS[@]}"; do
        [[ $target == direct ]] && continue
        log "saturated, $SATURATE_CONNECTIONS connections, $target: $SATURATE_REQUESTS requests"
        run_oha "$TMP/saturated-$target.json" "$SATURATE_REQUESTS" 0 plain "$target" "$SATURATE_CONNECTIONS"
        EXPECTED[$target]=$(( ${EXPECTED[$target]:-0} + SATURATE_REQUESTS ))
    done
fi
: >"$TMP/records.txt"
for name in anosys before; do
    [[ -n ${PID[$name]:-} ]] || continue
    kill -TERM "${PID[$name]}"
    for _ in $(seq 1 400); do kill -0 "${PID[$name]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
    PID[$name]=""
    stored=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM records").fetchone()[0])' "$TMP/$name.db")
    echo "$name $stored ${EXPECTED[$name]}" >>"$TMP/records.txt"
done

# ---- 5. report ----------------------------------------------------------------
python3 - "$TMP" "$RATES" "$TICK" "${ACTIVE[*]}" "$HISTORY_RATE" <<'PY'
import csv, json, math, os, sys
tmp, rates, tick, active, history_rate = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5]
proxies = [t for t in active if t != "direct"]

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]

def load(kind, rate, shape, target):
    """(p50, p99, ttfb p50, ttfb p99, failed, n) in ms."""
    base = f"{tmp}/run-{kind}-{rate}-{shape}-{target}"
    nan = float("nan")
    try:
        if shape == "even":
            d = json.load(open(base + ".json"))
            lat = d["latencyPercentiles"]
            codes = d.get("statusCodeDistribution", {})
            ok = sum(v for k, v in codes.items() if k.startswith("2"))
            bad = sum(codes.values()) - ok + sum(d.get("errorDistribution", {}).values())
            ms = lambda v: v * 1000 if v is not None else nan
            return ms(lat.get("p50")), ms(lat.get("p99")), nan, nan, bad, ok
        # hey -o csv: response-time, DNS+dialup, DNS, Request-write,
        # Response-delay (time to first byte), Response-read, status-code, offset
        rows = [r for r in csv.reader(open(base + ".csv"))][1:]
        ok = [r for r in rows if len(r) > 6 and r[6].startswith("2")]
        total = [float(r[0]) * 1000 for r in ok]
        ttfb = [float(r[4]) * 1000 for r in ok]
        return pct(total, 50), pct(total, 99), pct(ttfb, 50), pct(ttfb, 99), len(rows) - len(ok), len(ok)
    except (OSError, ValueError, KeyError):
        return nan, nan, nan, nan, -1, 0

f = lambda v: "—" if v != v else f"{v:.2f}"
a = lambda v: "—" if v != v else f"{v:+.2f}"
print("\nLatency in ms; added = through the proxy minus the upstream alone (same kind, rate and shape).")
print("even: oha -q (evenly spaced, latency-corrected); burst: hey -q, connections firing together;")
print("TTFB: time to first byte (hey), for streams the first event.\n")
print("| kind | rate | shape | upstream p50 / p99 | " + " | ".join(f"{p} added p50 / p99" for p in proxies) + " | upstream TTFB p50 / p99 | " + " | ".join(f"{p} added TTFB p50 / p99" for p in proxies) + " | failed |")
print("|---|---:|---|---|" + "---|" * len(proxies) + "---|" + "---|" * len(proxies) + "---|")
for kind in ("plain", "stream"):
    for rate in rates:
        for shape in ("even", "burst"):
            d = load(kind, rate, shape, "direct")
            cells, ttfbs, fails = [], [], [f"direct {d[4]}"]
            for p in proxies:
                x = load(kind, rate, shape, p)
                cells.append(f"{a(x[0] - d[0])} / {a(x[1] - d[1])}")
                ttfbs.append(f"{a(x[2] - d[2])} / {a(x[3] - d[3])}" if shape == "burst" else "—")
                fails.append(f"{p} {x[4]}")
            ut = f"{f(d[2])} / {f(d[3])}" if shape == "burst" else "—"
            print(f"| {kind} | {rate}/s | {shape} | {f(d[0])} / {f(d[1])} | " + " | ".join(cells) + f" | {ut} | " + " | ".join(ttfbs) + f" | {', '.join(fails)} |")

def resources(path):
    """target -> (CPU µs per request, requests, peak RSS MiB)."""
    res = {}
    for line in open(path):
        t, ticks, n, hwm = line.split()
        res[t] = (int(ticks) / tick / max(1, int(n)) * 1e6, int(n), int(hwm) / 1024)
    return res

def print_resources(res):
    print("| process | requests | CPU per request | vs nginx | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for t in active:
        if t not in res or res[t][1] == 0:
            continue
        us, n, mib = res[t]
        vs = f"{us / res['nginx'][0]:.2f}×" if "nginx" in res and res["nginx"][0] > 0 and t != "direct" else "—"
        name = "upstream (demo-server)" if t == "direct" else t
        print(f"| {name} | {n} | {us:.0f} µs | {vs} | {mib:.1f} MiB |")

print()
res = resources(f"{tmp}/resources.txt")
print_resources(res)

history = {}
if os.path.exists(f"{tmp}/resources-history.txt"):
    history = resources(f"{tmp}/resources-history.txt")
    print(f"\nA chat with a 41 KB history, {history_rate} req/s, even load (oha -q), its CPU counted apart.\n")
    d = load("history", history_rate, "even", "direct")
    print("| target | p50 / p99 | added p50 / p99 | failed |")
    print("|---|---|---|---:|")
    for t in active:
        if t not in history or history[t][1] == 0:
            continue
        x = load("history", history_rate, "even", t)
        added = "—" if t == "direct" else f"{a(x[0] - d[0])} / {a(x[1] - d[1])}"
        print(f"| {'upstream (demo-server)' if t == 'direct' else t} | {f(x[0])} / {f(x[1])} | {added} | {x[4]} |")
    print()
    print_resources(history)

saturated = {}
for t in proxies:
    try:
        d = json.load(open(f"{tmp}/saturated-{t}.json"))
        saturated[t] = (d["summary"]["requestsPerSec"], d["latencyPercentiles"]["p99"] * 1000)
    except (OSError, ValueError, KeyError, TypeError):
        pass
if saturated:
    print("\nSaturated: plain chats at no set rate (oha), many connections; every record must still be stored (below).\n")
    print("| proxy | requests/s | p99 |")
    print("|---|---:|---:|")
    for t, (rps, p99) in saturated.items():
        print(f"| {t} | {rps:,.0f} | {p99:.2f} ms |")

# One line per figure for bench/all.py: SUMMARY what|baseline|base|value|unit|goal
if "anosys" in res:
    if "nginx" in res:
        print(f"SUMMARY proxy CPU per proxied chat request (capture on, SQLite store)|nginx as a pass-through|{res['nginx'][0]:.1f}|{res['anosys'][0]:.1f}|us|<= 1.5x nginx")
    if "nginx" in res and "bare" in res:
        print(f"SUMMARY proxy CPU per request, its HTTP stack alone (bare_proxy: no capture, no store)|nginx as a pass-through|{res['nginx'][0]:.1f}|{res['bare'][0]:.1f}|us|(the floor for the row above)")
    print(f"SUMMARY proxy peak memory at up to {max(int(r) for r in rates)} req/s|-||{res['anosys'][2]:.1f}|MiB|<= 40 MiB")
    if "anosys" in history and "nginx" in history:
        print(f"SUMMARY proxy CPU per proxied chat request with a 41 KB history (capture on, SQLite store)|nginx as a pass-through|{history['nginx'][0]:.1f}|{history['anosys'][0]:.1f}|us|<= 1.5x nginx")
        d = load("history", history_rate, "even", "direct")
        for i, q in ((0, "p50"), (1, "p99")):
            added = lambda t: load("history", history_rate, "even", t)[i] - d[i]
            print(f"SUMMARY proxy added latency {q}, chat with a 41 KB history, even load at {history_rate} req/s|nginx's added {q}|{added('nginx'):.2f}|{added('anosys'):.2f}|ms|within +0.2 ms of nginx's")
    if "nginx" in active:
        for shape in ("even", "burst"):
            for i, q in ((0, "p50"), (1, "p99")):
                worst = lambda t: max((load(k, r, shape, t)[i] - load(k, r, shape, "direct")[i]) for k in ("plain", "stream") for r in rates)
                print(f"SUMMARY proxy added latency {q}, {shape} load, worst of plain/stream at {'/'.join(rates)} req/s|nginx's added {q}|{worst('nginx'):.2f}|{worst('anosys'):.2f}|ms|within +0.2 ms of nginx's")
PY

echo
while read -r name stored sent; do
    echo "Records stored by $name: $stored (requests sent through it, warm-up included: $sent)"
    [[ $stored -eq $sent ]] || log "warning: $name stored $stored records for $sent requests"
done <"$TMP/records.txt"
echo "CPU per request: utime+stime of the process (nginx: master and workers) over the measured runs, / requests; clock tick 1/$TICK s"
echo "Total time: $(($(date +%s) - START_TS)) s"
