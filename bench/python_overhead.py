#!/usr/bin/env python3
"""Per-call cost of ``client.chat.completions.create`` as the caller sees
it, against a local OpenAI-compatible server, in one run:

- bare: the openai client, nothing installed
- anosys: this repository's package (``AnosysOpenAILogger()``)
- anosys-sdk-openai: the original package from PyPI (1.0.14), in a venv
  of its own (this package ships an ``anosys_sdk_openai`` module for
  moving from it, which would replace the original's in a shared venv)
- otel-openai-v2: ``opentelemetry-instrumentation-openai-v2`` with the
  OpenTelemetry SDK's batch span processor

Every variant runs in a fresh process (their patches cannot share one),
in interleaved rounds; each process makes WARMUP calls, then times N calls
one after another, plain and streamed. Figures are medians over rounds,
reported as ratios to bare. Everything stays on 127.0.0.1: the upstream is
``anosys demo-server`` (recorded OpenAI replies), and the packages that
post records post them to a local AnoSys stand-in in this process.

Usage (from the repository root; installs into target/bench-venv and
target/bench-original-venv):

    python3 bench/python_overhead.py            # N=2000, 5 rounds
    python3 bench/python_overhead.py --n 500 --rounds 3
    # the in-process pairs (the goal's rows) in the first round only
    # (bench/all.py does so: they take most of a round's time)
    python3 bench/python_overhead.py --n 500 --rounds 3 --in-process-runs 1
    # also time the capture work of another build's native module (say,
    # main's), in the same processes, for a before/after in one run:
    python3 bench/python_overhead.py --baseline-native path/to/_native.abi3.so
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV = ROOT / "target" / "bench-venv"
PY = VENV / "bin" / "python"
# The original package, alone with the same openai: this package's
# `anosys_sdk_openai` compatibility module would otherwise replace it.
ORIGINAL_VENV = ROOT / "target" / "bench-original-venv"
ORIGINAL_PY = ORIGINAL_VENV / "bin" / "python"
SEED = "anosys-sdk-openai"
VARIANTS = ["bare", "anosys", SEED, "otel-openai-v2"]
# Variants that post records to the AnoSys stand-in.
POSTING = ("anosys", SEED)
OPENAI = "openai==3.57.0"
# The long stream of the per-event figure: its content events this many times.
LONG_REPEAT = 16
ORIGINAL_PACKAGES = [OPENAI, "anosys-sdk-core==1.0.14", "anosys-sdk-openai==1.0.14"]
PACKAGES = [
    OPENAI,
    "opentelemetry-instrumentation-openai-v2==2.4b0",
    # 2.4b0 imports util.genai.instruments, which 1.2b0 renamed
    "opentelemetry-util-genai==1.1b0",
    "opentelemetry-sdk",
    "httpx",  # opentelemetry-instrumentation-openai-v2 imports it; openai 3.x itself uses httpx2
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        Collector.received += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


def setup() -> None:
    for venv, py, packages in ((VENV, PY, PACKAGES), (ORIGINAL_VENV, ORIGINAL_PY, ORIGINAL_PACKAGES)):
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages], check=True)
    pip = [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + [str(ROOT / "crates" / "anosys-python")], check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "anosys-cli"], cwd=ROOT, check=True)


def capture_loop(native, url, request, reply, n: int) -> float:
    """Microseconds per call of what a plain call hands the engine (wall,
    and CPU time of the calling thread): one `record_openai_call` with the
    bodies as sent and as read, as the package does since 75dda133 (an
    engine without it: `OpenAICall` start + finish), over `n` calls in runs
    of at most 1,000 (what the delivery queue holds), the records delivered
    after each run and before returning, outside the timing (so a
    background backlog of one measurement does not land in the next)."""
    one_step = getattr(native, "record_openai_call", None)
    if one_step is not None:
        body = json.dumps(request, separators=(",", ":")).encode()

        def record() -> None:
            one_step(url, body, 0.001, reply, 200, None, None)
    else:

        def record() -> None:
            native.OpenAICall(url, request, None, None, None).finish(reply)

    for _ in range(min(n, 200)):
        record()
    native.flush(30)
    wall = cpu = 0
    left = n
    while left > 0:
        run = min(left, 1000)
        t, c = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(run):
            record()
        # CPU time of this thread alone: what the engine's threads do (and
        # other processes on the machine) does not count
        wall, cpu = wall + time.perf_counter_ns() - t, cpu + time.thread_time_ns() - c
        native.flush(30)
        left -= run
    return wall / n / 1000, cpu / n / 1000


def load_native(path: str):
    """Another build's ``_native`` module, loaded next to this package's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_native", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_process(upstream: str, backend: str) -> None:
    """What the package adds to the caller's thread in a real call, in one
    process: one openai client whose transport hands back the upstream's
    reply at once (fetched from it beforehand; no HTTP while timed), called
    in alternating blocks instrumented (``instrument_openai``) and bare
    (``uninstrument_openai``), which goes first alternating too, so that
    this machine's drift falls on both alike. CPU time of the calling
    thread per call, for each block; the records are delivered between
    pairs, outside the timing. Unlike the capture-alone loop, this counts
    the Python wrapper and the engine's work as they run inside openai's
    own."""
    import httpx

    os.environ["ANOSYS_API_URL"] = backend
    import anosys
    import openai

    messages = [{"role": "user", "content": "Say this is a test"}]
    replies = {}
    for kind, stream in (("plain", False), ("stream", True)):
        r = httpx.post(upstream + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": messages, "stream": stream})
        replies[kind] = (r.content, r.headers.get("content-type", "application/json"))
    # A stream's events come one network chunk each, as a token stream's
    # do; the long stream repeats the content events (the first event and
    # the last three, usage and [DONE] among them, once).
    short = [e for e in replies["stream"][0].split(b"\n\n") if e.strip()]
    long = [short[0], *short[1:-3] * LONG_REPEAT, *short[-3:]]
    chunks = {"stream": [e + b"\n\n" for e in short], "long": [e + b"\n\n" for e in long]}
    replies["long"] = replies["stream"]
    data_of = lambda events: [d for d in (e.decode().removeprefix("data: ").strip() for e in events) if d != "[DONE]"]  # noqa: E731
    counts = {"stream": len(data_of(short)), "long": len(data_of(long))}
    state = {"kind": "plain"}

    def canned(request: httpx.Request) -> httpx.Response:
        body, content_type = replies[state["kind"]]
        if state["kind"] in chunks:
            return httpx.Response(200, headers={"content-type": content_type}, content=iter(chunks[state["kind"]]))
        return httpx.Response(200, headers={"content-type": content_type}, content=body)

    client = openai.OpenAI(api_key="sk-bench", base_url=upstream + "/v1", max_retries=0,
                           http_client=httpx.Client(transport=httpx.MockTransport(canned)))

    def call() -> None:
        if state["kind"] == "plain":
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        else:
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
                pass

    def block(instrumented: bool, n: int) -> float:
        if instrumented:
            anosys.instrument_openai()
        else:
            anosys.uninstrument_openai()
        c = time.thread_time_ns()
        for _ in range(n):
            call()
        return (time.thread_time_ns() - c) / 1000 / n

    # 32 pairs of 100 calls: about 25 s a round here (a bare call takes 1-2.5 ms).
    # The long stream's blocks hold as many events as the short stream's
    # (9 calls of 83 events against 100 of 8): its calls take about ten
    # times as long, and at 100 calls a block they took about half of this
    # script's time in `bench/all.py`. Its figure is read a share for each
    # event more (75), which divides its spread alike.
    block_n, rounds = 100, 32
    calls = {"plain": block_n, "stream": block_n, "long": max(8, block_n * counts["stream"] // counts["long"])}
    out = {}
    for kind in ("plain", "stream", "long"):
        state["kind"] = kind
        n = calls[kind]
        for _ in range(3):
            block(False, n)
            block(True, n)
        anosys.flush(30)
        bare, added = [], []
        for r in range(rounds):
            t = {}
            for instrumented in ((False, True) if r % 2 else (True, False)):
                t[instrumented] = block(instrumented, n)
            bare.append(t[False])
            added.append(t[True] - t[False])
            anosys.flush(30)
        added.sort()
        out[kind] = {"bare_us": statistics.median(bare), "added_us": statistics.median(added),
                     "lo": added[rounds // 4], "hi": added[3 * rounds // 4], "calls_a_block": n}
    # Per stream event: the long stream's added work less the short one's,
    # a share for each event more; against json.loads of the events' data
    # (what openai itself does with each), timed here.
    data = data_of(long)
    parse = []
    for _ in range(9):
        c = time.thread_time_ns()
        for _ in range(500):
            for d in data:
                json.loads(d)
        parse.append((time.thread_time_ns() - c) / (500 * len(data)))
    out["per_event"] = {"added_ns": (out["long"]["added_us"] - out["stream"]["added_us"]) * 1000
                        / (counts["long"] - counts["stream"]),
                        "parse_ns": statistics.median(parse), "events": [counts["stream"], counts["long"]]}
    state["kind"] = "plain"
    out["edges"] = own_code_at_edges(anosys, call, block_n, rounds)
    out["delivered"] = anosys.flush(30)["delivered"]
    print(json.dumps(out))


def own_code_at_edges(anosys, call, block_n: int, rounds: int) -> dict:
    """The package's own code on the caller's thread in real plain calls,
    timed at its edges: markers around openai's own ``create`` and
    ``_parse`` (inside the package's wrappers) and around what the caller
    calls (outside them) read the wall time between the two, per call; the
    same markers on a bare client read what they cost alone. Instrumented
    and bare blocks interleave as above, the records delivered between
    them; the figure is the median of the instrumented calls' time between
    the edges less that of the bare calls'. Unlike the pairs above, it does
    not count any slowing of openai's own work by the engine's threads on
    the other core, and it is not lost in that work's spread between blocks
    (a bare call's own CPU moves by +-10% between blocks of 100 calls)."""
    from openai._response import BaseAPIResponse
    from openai.resources.chat.completions import Completions

    now = time.perf_counter_ns
    spent = [0, 0]  # inside openai's own (inner markers), inside the caller's (outer)
    # openai's own methods, not the package's wrappers of them: the pairs
    # before this leave the client instrumented.
    anosys.uninstrument_openai()
    real_create, real_parse = Completions.create, BaseAPIResponse._parse

    def marked(fn, slot):
        def marker(self, *args, **kwargs):
            t = now()
            try:
                return fn(self, *args, **kwargs)
            finally:
                spent[slot] += now() - t
        return marker

    inner_create, inner_parse = marked(real_create, 0), marked(real_parse, 0)
    Completions.create, BaseAPIResponse._parse = inner_create, inner_parse

    def block(instrumented: bool) -> list:
        if instrumented:
            anosys.instrument_openai()
        Completions.create = marked(Completions.create, 1)
        BaseAPIResponse._parse = marked(BaseAPIResponse._parse, 1)
        between = []
        for _ in range(block_n):
            spent[0] = spent[1] = 0
            call()
            between.append(spent[1] - spent[0])
        anosys.uninstrument_openai()
        Completions.create, BaseAPIResponse._parse = inner_create, inner_parse
        anosys.flush(30)
        return between

    try:
        for _ in range(3):
            block(False)
            block(True)
        bare, instrumented = [], []
        for r in range(rounds):
            for on in ((False, True) if r % 2 else (True, False)):
                (instrumented if on else bare).extend(block(on))
    finally:
        anosys.uninstrument_openai()
        Completions.create, BaseAPIResponse._parse = real_create, real_parse
    base = statistics.median(bare)
    instrumented.sort()
    q = lambda f: (instrumented[int(len(instrumented) * f)] - base) / 1000  # noqa: E731
    return {"added_us": (statistics.median(instrumented) - base) / 1000, "markers_us": base / 1000,
            "lo": q(0.25), "hi": q(0.75), "calls": len(instrumented)}


def worker(variant: str, upstream: str, backend: str, n: int, warmup: int, baseline: str | None = None,
           capture_n: int = 5000) -> None:
    """Runs in the bench venv: instruments, then times the calls."""
    if variant == "in-process":
        return in_process(upstream, backend)
    if variant == "anosys":
        os.environ["ANOSYS_API_URL"] = backend
        import anosys

        anosys.AnosysOpenAILogger()
    elif variant == SEED:
        import importlib.util

        # The original, not this package's module of the same name.
        if importlib.util.find_spec("anosys") is not None:
            sys.exit(f"{SEED}: this package is installed next to it in {sys.prefix}; the original needs a venv of its own")
        import anosys_sdk_openai.instrumentor as seed

        seed.resolve_api_key = lambda *a, **k: backend  # stay on loopback
        seed.AnosysOpenAILogger()
    elif variant == "otel-openai-v2":
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        from opentelemetry import trace
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
        OpenAIInstrumentor().instrument(tracer_provider=provider)
    import openai

    client = openai.OpenAI(api_key="sk-bench", base_url=upstream + "/v1", max_retries=0)
    messages = [{"role": "user", "content": "Say this is a test"}]

    def plain():
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    def streamed():
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
            pass

    out = {}
    for name, fn in (("plain", plain), ("stream", streamed)):
        for _ in range(warmup):
            fn()
        times = []
        deadline = time.monotonic() + 120
        cpu = time.process_time_ns()
        for _ in range(n):
            t = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t)
            if time.monotonic() > deadline:
                break
        # CPU of the whole process (every thread, the engine's included) per call
        cpu_us = (time.process_time_ns() - cpu) / len(times) / 1000
        out[name] = {"median_us": statistics.median(times) / 1000, "cpu_us": cpu_us, "calls": len(times)}
    if variant == "anosys":
        import anosys
        from anosys import _native

        # The capture work alone, no HTTP: what the package adds to a call.
        # It hands the engine the body openai read (the model object only
        # when openai's parse could not be followed); an older build (the
        # baseline) was handed the reply object.
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
        reply, body = raw.parse(), raw.http_response.content
        url = upstream + "/v1/chat/completions"
        request = {"model": "gpt-4o-mini", "messages": messages}
        if baseline:
            out["capture_baseline_us"], out["capture_baseline_cpu_us"] = capture_loop(load_native(baseline), url, request, reply, capture_n)
        out["capture_us"], out["capture_cpu_us"] = capture_loop(_native, url, request, body, capture_n)
        out["capture_object_us"], out["capture_object_cpu_us"] = capture_loop(_native, url, request, reply, capture_n)
        out["delivered"] = anosys.flush(30)["delivered"]
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--capture-n", type=int, default=5000,
                    help="calls the capture work alone is timed over, per round (in runs of up to 1,000)")
    ap.add_argument("--in-process-runs", type=int, default=0,
                    help="rounds that also run the in-process pairs (the goal's rows; about 2 minutes each in a slow hour), "
                         "from the first; default: every round")
    ap.add_argument("--skip-setup", action="store_true")
    ap.add_argument("--baseline-native", help="another build's _native module to time the capture work of too")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.upstream, args.backend, args.n, args.warmup, args.baseline_native,
                      args.capture_n)

    if not args.skip_setup:
        setup()
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(ROOT / "target" / "release" / "anosys"), "demo-server", "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    backend = f"http://127.0.0.1:{httpd.server_address[1]}/log"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        results = {v: {"plain": [], "stream": []} for v in VARIANTS}
        posted = {v: 0 for v in VARIANTS}
        capture = []
        capture_base = []
        capture_object = []
        in_process_runs = []
        env = dict(os.environ, ANOSYS_DB=str(ROOT / "target" / "bench-anosys.db"))
        env.pop("ANOSYS_API_KEY", None)

        def run_worker(variant: str, python: pathlib.Path, *extra: str) -> dict:
            """One worker process; its last line of output, parsed."""
            proc = subprocess.run([str(python), __file__, "--worker", variant, "--upstream", upstream, "--backend", backend,
                                   *extra], capture_output=True, text=True, env=env, timeout=600)
            if proc.returncode != 0:
                sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
            return json.loads(proc.stdout.strip().splitlines()[-1])

        for r in range(args.rounds):
            if r < (args.in_process_runs or args.rounds):
                got = run_worker("in-process", PY)
                in_process_runs.append(got)
                print(f"round {r + 1} in-process: the caller's CPU a call, bare / added by anosys: plain "
                      f"{got['plain']['bare_us']:.1f} / {got['plain']['added_us']:.1f} us, stream "
                      f"{got['stream']['bare_us']:.1f} / {got['stream']['added_us']:.1f} us, delivered {got['delivered']}",
                      file=sys.stderr)
            for v in VARIANTS:
                before = Collector.received
                got = run_worker(
                    v, ORIGINAL_PY if v == SEED else PY,
                    "--n", str(args.n), "--warmup", str(args.warmup), "--capture-n", str(args.capture_n),
                    *(["--baseline-native", str(pathlib.Path(args.baseline_native).resolve())] if args.baseline_native else []),
                )
                posted[v] += Collector.received - before
                for kind in ("plain", "stream"):
                    results[v][kind].append((got[kind]["median_us"], got[kind]["cpu_us"]))
                extra = ""
                if "capture_us" in got:
                    capture.append((got["capture_us"], got["capture_cpu_us"]))
                    capture_object.append((got["capture_object_us"], got["capture_object_cpu_us"]))
                    extra = f", capture alone {got['capture_us']:.1f} us (thread cpu {got['capture_cpu_us']:.1f}), delivered {got['delivered']}"
                if "capture_baseline_us" in got:
                    capture_base.append((got["capture_baseline_us"], got["capture_baseline_cpu_us"]))
                    extra += f", baseline build {got['capture_baseline_us']:.1f} us (thread cpu {got['capture_baseline_cpu_us']:.1f})"
                print(f"round {r + 1} {v:18} plain {got['plain']['median_us']:8.1f} us (cpu {got['plain']['cpu_us']:7.1f})"
                      f"  stream {got['stream']['median_us']:8.1f} us (cpu {got['stream']['cpu_us']:7.1f}){extra}", file=sys.stderr)
        print(f"\nper call, median over {args.rounds} rounds of {args.n} calls; ratio to bare in the same run")
        print("wall: the caller's median latency; cpu: CPU time of the calling process (all its threads) per call")
        print(f"{'variant':18} {'plain wall':>10} {'ratio':>6} {'cpu':>7} {'ratio':>6}   {'stream wall':>11} {'ratio':>6} {'cpu':>7} {'ratio':>6}")

        def med(v, kind, i):
            return statistics.median(x[i] for x in results[v][kind])

        for v in VARIANTS:
            cells = []
            for kind in ("plain", "stream"):
                wall, cpu = med(v, kind, 0), med(v, kind, 1)
                cells.append(f"{wall:10.1f} {wall / med('bare', kind, 0):6.2f} {cpu:7.1f} {cpu / med('bare', kind, 1):6.2f}")
            print(f"{v:18} {cells[0]}   {cells[1]}")
        bare = med("bare", "plain", 0)

        def line(what, xs):
            wall, cpu = statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)
            print(f"{what}: {wall:.1f} us per call ({wall / bare * 100:.1f}% of a bare call), "
                  f"CPU of the calling thread {cpu:.1f} us ({cpu / bare * 100:.1f}%)")

        print()
        for kind in ("plain", "stream"):
            pick = lambda key: statistics.median(run[kind][key] for run in in_process_runs)  # noqa: E731
            print(f"anosys on the caller's thread in a real {kind} call (openai {OPENAI.split('==')[1]}, instrumented and bare "
                  f"blocks interleaved in one process, median of {len(in_process_runs)} such runs, the reply from a mock transport, no HTTP): "
                  f"{pick('added_us'):.1f} us added to the bare client's {pick('bare_us'):.1f} us (middle half of the pairs "
                  f"{pick('lo'):.1f} to {pick('hi'):.1f}), CPU of the calling thread")
        pick = lambda key: statistics.median(run["edges"][key] for run in in_process_runs)  # noqa: E731
        print(f"anosys's own code on the caller's thread in a real plain call, timed at its edges (openai "
              f"{OPENAI.split('==')[1]}, wall time between markers outside and inside the package's wrappers, "
              f"less the same on a bare client; {in_process_runs[0]['edges']['calls']} calls a run): "
              f"{pick('added_us'):.1f} us (middle half of the calls {pick('lo'):.1f} to {pick('hi'):.1f}; "
              f"the markers alone {pick('markers_us'):.1f} us)")
        pick = lambda key: statistics.median(run["per_event"][key] for run in in_process_runs)  # noqa: E731
        few, many = in_process_runs[0]["per_event"]["events"]
        blocks = [in_process_runs[0][k]["calls_a_block"] for k in ("stream", "long")]
        print(f"anosys on the caller's thread per stream event (real stream calls of {few} and {many} events, one network "
              f"chunk each, in blocks of {blocks[0]} and {blocks[1]} calls, the difference a share for each event more): {pick('added_ns'):.0f} ns against json.loads of "
              f"the event's data {pick('parse_ns'):.0f} ns")
        line("anosys capture work alone (one-step record of a plain call with the bodies openai sent and read, no HTTP)", capture)
        line("the same finished with the reply object (the fallback)", capture_object)
        if capture_base:
            line(f"the baseline build ({args.baseline_native}), finished with the reply object as it was", capture_base)
        print(f"AnoSys stand-in received {Collector.received} records: "
              + ", ".join(f"{v} {posted[v]}" for v in POSTING))
        for v in POSTING:
            if posted[v] == 0:
                print(f"warning: {v} posted no record to the stand-in; its figures are not those of a capturing client")
    finally:
        server.terminate()
        httpd.shutdown()


if __name__ == "__main__":
    main()
