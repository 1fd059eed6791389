#!/usr/bin/env python3
"""Every speed figure the README reports for the capture path, the store,
delivery, the Python and Node packages and the proxy, in one run, each next
to a baseline measured in the same run, printed as one table.

    python3 bench/all.py              # everything: 884 s on 2 cores in a slow hour (Python 298, proxy 316)
    python3 bench/all.py --quick      # shorter measurements, for a smoke run
    python3 bench/all.py --only engine,store

Parts: engine (caller, encoder, extraction, stream chunks: each timed
interleaved with its baseline by benches/ratios.rs, the ratio the median
of 40 rounds),
store (SQLite), delivery (loopback AnoSys stand-in), python, node, proxy
(bench/proxy_load.sh: the upstream alone, nginx, our HTTP stack with
nothing captured (bare_proxy), anosys and LiteLLM). A part whose
tools are missing (node, nginx, ...) is reported as skipped, not failed.
Loopback only (127.0.0.1); every loop is bounded.

The table goes to stdout and, as JSON, to target/bench-all/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "target" / "bench-all"
CRITERION = ROOT / "target" / "criterion"


class Row:
    """One line of the table: a figure next to its baseline and goal."""

    def __init__(self, what: str, baseline: str, base: Optional[float], value: Optional[float], unit: str,
                 goal: str, ratio: Optional[float] = None, note: str = "") -> None:
        self.what, self.baseline, self.base, self.value, self.unit = what, baseline, base, value, unit
        self.goal, self.note = goal, note
        self.ratio = ratio if ratio is not None else (value / base if value is not None and base else None)

    def cells(self) -> List[str]:
        def fmt(v: Optional[float]) -> str:
            if v is None:
                return "-"
            if v >= 100:
                return f"{v:,.0f} {self.unit}"
            return f"{v:.2f} {self.unit}" if v < 10 else f"{v:.1f} {self.unit}"

        if self.ratio is None:
            ratio = "-"
        elif self.ratio < 0.1:
            ratio = f"{self.ratio * 100:.1f}%"
        else:
            ratio = f"{self.ratio:.2f}x"
        base = self.baseline + (f" ({fmt(self.base)})" if self.base is not None else "")
        met = {True: "yes", False: "no", None: ""}[self.met()]
        return [self.what, base, fmt(self.value), ratio, self.goal, met, self.note]

    def met(self) -> Optional[bool]:
        """Whether the figure meets its goal: every part of it (comma-
        separated) holds. None when the goal has no check this script knows
        (`-`, a remark in brackets) or a figure it needs is missing."""
        checks = [goal_check(part.strip()) for part in re.split(r",\s*(?=<=|>=|within)", self.goal)]
        if not self.goal.strip() or None in checks:
            return None
        results = [check(self) for check in checks]  # type: ignore[misc]
        return None if None in results else all(results)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def goal_check(goal: str) -> Optional[Callable[[Row], Optional[bool]]]:
    """The check one part of a goal names, or None if it names none:
    `<= 1.5x` (or `<= 1.5x nginx`: the ratio to the baseline), `<= 2 us`,
    `<= 40 MiB`, `>= 100,000 rec/s` (the figure, in the row's unit),
    `<= 200 ns above the parse` and `within +0.2 ms of nginx's` (the figure
    less its baseline)."""
    def need(*values: Optional[float]) -> bool:
        return all(v is not None for v in values)

    m = re.fullmatch(r"<= ([\d.]+)x(?: \w+)?", goal)
    if m:
        limit = _number(m.group(1))
        return lambda row: row.ratio <= limit if need(row.ratio) else None
    m = re.fullmatch(r"(<=|>=) ([\d.,]+) (\S+)", goal)
    if m:
        op, limit, unit = m.group(1), _number(m.group(2)), m.group(3)

        def absolute(row: Row) -> Optional[bool]:
            if unit != row.unit or not need(row.value):
                return None
            return row.value <= limit if op == "<=" else row.value >= limit  # type: ignore[operator]
        return absolute
    m = re.fullmatch(r"<= ([\d.,]+) (\S+) above the \w+|within \+([\d.]+) (\S+) of .+", goal)
    if m:
        limit, unit = _number(m.group(1) or m.group(3)), m.group(2) or m.group(4)

        def above(row: Row) -> Optional[bool]:
            if unit != row.unit or not need(row.value, row.base):
                return None
            # A margin for the figures' own rounding (they are printed to 0.01).
            return row.value - row.base <= limit + 1e-9  # type: ignore[operator]
        return above
    return None


def self_test() -> None:
    """Checks the goal column on rows of known figures (scripts/test.sh)."""
    cases = [
        (Row("a", "b", 1.52, 2.25, "us", "<= 2 us, <= 1.5x", ratio=1.50), False),
        (Row("a", "b", 1.52, 1.90, "us", "<= 2 us, <= 1.5x", ratio=1.25), True),
        (Row("a", "b", 2.19, 3.66, "us", "<= 2x", ratio=1.68), True),
        (Row("a", "b", 2766, 2021, "ns", "<= 200 ns above the parse"), True),
        (Row("a", "b", 2766, 2980, "ns", "<= 200 ns above the parse"), False),
        (Row("a", "b", 380608, 78277, "rec/s", ">= 100,000 rec/s"), False),
        (Row("a", "-", None, 120000, "rec/s", ">= 100,000 rec/s"), True),
        (Row("a", "b", 2014, 7.4, "us", "<= 10 us"), True),
        (Row("a", "b", 90.0, 289, "us", "<= 1.5x nginx"), False),
        (Row("a", "-", None, 33.6, "MiB", "<= 40 MiB"), True),
        (Row("a", "b", 0.15, 0.33, "ms", "within +0.2 ms of nginx's"), True),
        (Row("a", "b", 0.70, 1.50, "ms", "within +0.2 ms of nginx's"), False),
        (Row("a", "b", 90.0, 159, "us", "(the floor for the row above)"), None),
        (Row("a", "b", 23.1, 45.8, "us", "-"), None),
        (Row("a", "b", None, None, "us", "<= 1.5x"), None),
        (Row("a", "-", None, 12.0, "us", "<= 40 MiB"), None),
    ]
    for row, expected in cases:
        assert row.met() is expected, f"{row.goal!r} with {row.base}, {row.value}, {row.ratio}: {row.met()}"
    # The packages' lines, as the overhead scripts print them, read into rows.
    out = "\n".join([
        "bare  bare  729.5 us",
        "anosys on the event loop in a real plain call (x): 30.5 us added to the bare client's 201.0 us "
        "(middle half of the pairs 16.9 to 46.3), CPU of the event loop's thread",
        "anosys on the event loop in a real stream call (x): 102.0 us added to the bare client's 305.0 us "
        "(middle half of the pairs 73.2 to 126.8), CPU of the event loop's thread",
        "anosys on the event loop per stream event (real stream calls of 8 and 100 events, one network chunk each, "
        "in blocks of 200 and 16 calls, the difference a share for each event more): 1210 ns against JSON.parse of the "
        "event's data 1821 ns",
        "anosys capture work alone (y): 8.2 us per call (0.7% of a bare call), CPU of the event loop's thread 7.6 us (0.7%)",
    ])
    rows = in_process_rows("Node", out, "the event loop", "openai 7.59", "CPU")
    event = [r for r in rows if "per stream event" in r.what]
    assert len(event) == 1 and (event[0].base, event[0].value, event[0].met()) == (1821.0, 1210.0, True), vars(event[0])
    assert "JSON.parse" in event[0].baseline and "100 events less one of 8" in event[0].note, vars(event[0])
    assert "blocks of 200 and 16 calls" in event[0].note, vars(event[0])
    assert [r.value for r in rows if "real plain" in r.what] == [30.5], [vars(r) for r in rows]
    out = "\n".join([
        "anosys on the caller's thread in a real plain call (x): 34.4 us added to the bare client's 1234.0 us "
        "(middle half of the pairs -13.2 to 85.2), CPU of the calling thread",
        "anosys's own code on the caller's thread in a real plain call, timed at its edges (openai 3.57.0, y; 3200 calls "
        "a run): 21.5 us (middle half of the calls 16.2 to 30.4; the markers alone 2.1 us)",
        "anosys capture work alone (y): 2.0 us per call (0.1% of a bare call), CPU of the calling thread 2.0 us (0.1%)",
    ])
    rows = in_process_rows("Python", out, "the caller's thread", "openai 3.57", "CPU of the calling thread")
    assert [r.value for r in rows if "real plain" in r.what] == [34.4, 21.5], [vars(r) for r in rows]
    edges = rows[1]
    assert "timed at its edges" in edges.what and (edges.base, edges.value, edges.goal) == (1234.0, 21.5, "-"), vars(edges)
    assert edges.note == "middle half of the calls 16.2 to 30.4 us; the markers alone 2.1 us", vars(edges)
    print(f"bench/all.py self-test: {len(cases)} goal checks and the packages' lines read as expected")


def log(msg: str) -> None:
    print(f"[bench/all] {msg}", file=sys.stderr, flush=True)


def run(cmd: List[str], timeout: int, env: Optional[Dict[str, str]] = None, log_name: str = "") -> str:
    """Runs `cmd` from the repository root, bounded in time; its output is
    kept in target/bench-all/<log_name>.log and returned."""
    log(" ".join(cmd))
    merged = dict(os.environ)
    merged.update(env or {})
    started = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=merged, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    (OUT / f"{log_name or cmd[0]}.log").write_text(proc.stdout)
    log(f"  done in {time.time() - started:.0f} s (exit {proc.returncode})")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); see target/bench-all/{log_name}.log")
    return proc.stdout


def criterion_medians() -> Dict[str, float]:
    """Median time (ns) of every criterion benchmark measured, by
    "group/function" as the bench names it."""
    out: Dict[str, float] = {}
    for bench in CRITERION.glob("**/new/benchmark.json"):
        try:
            meta = json.loads(bench.read_text())
            est = json.loads((bench.parent / "estimates.json").read_text())
            out[meta["full_id"]] = est["median"]["point_estimate"]
        except (OSError, KeyError, ValueError):
            continue
    return out


def criterion_args(quick: bool) -> List[str]:
    return ["--warm-up-time", "1", "--measurement-time", "2" if quick else "5", "--noplot"]


def ratios(quick: bool) -> Dict[str, Tuple[float, float, float, float, float]]:
    """The engine's pairs timed interleaved (benches/ratios.rs): by name,
    (baseline ns, figure ns, median ratio, 25th and 75th percentile)."""
    out = run(["cargo", "bench", "-p", "anosys", "--features", "async-openai", "--bench", "ratios"], 1200,
              env={"ANOSYS_BENCH_ROUNDS": "12" if quick else "40"}, log_name="engine-ratios")
    found = {}
    for line in out.splitlines():
        if line.startswith("RATIO "):
            name, *figures = line[len("RATIO "):].split("|")
            found[name] = tuple(float(f) for f in figures)
    return found


def engine(quick: bool) -> List[Row]:
    # One criterion group still (the capture-and-encode comparison); every
    # row with a goal comes from the interleaved pairs.
    run(["cargo", "bench", "-p", "anosys", "--features", "async-openai", "--bench", "openai", "--",
         *criterion_args(quick), "AnoSys body of a captured chat call"], 1200, log_name="engine-openai")
    m = criterion_medians()
    us = lambda key: m[key] / 1000 if key in m else None  # noqa: E731
    r = ratios(quick)

    def pair(what: str, baseline: str, name: str, goal: str, unit: str = "us", per: float = 1.0) -> Row:
        if name not in r:
            return Row(what, baseline, None, None, unit, goal, note=f"no RATIO line for {name}")
        base, value, ratio, lo, hi = r[name]
        scale = (1000.0 if unit == "us" else 1.0) * per
        return Row(what, baseline, base / scale, value / scale, unit, goal, ratio=ratio,
                   note=f"interleaved; middle half {lo:.2f}-{hi:.2f}x")

    rows = [
        pair("caller: build and enqueue one typical LLM record (system allocator)", "building it alone", "caller",
             "<= 2 us, <= 1.5x"),
        pair("the same, the caller thread's CPU time (its own work, not the time the pipeline's threads take it off a core)",
             "building it alone", "caller cpu", "<= 2 us, <= 1.5x"),
        pair("encode a 30-field record to its AnoSys body", "serde_json::to_vec of the record", "encode", "<= 2x"),
        pair("extract a chat response with tool calls into a record", "serde_json::from_slice of the body", "extract",
             "<= 1.5x"),
        pair("the same, content capture off (the answer read straight from its bytes, no Value built)",
             "serde_json::from_slice of the body", "extract, content off", "<= 1.5x"),
        Row("a captured chat call, from its answer's bytes to its AnoSys body (capture, then the sink's encoding)",
            "the same with the answer parsed first (as capture kept it before)",
            us("AnoSys body of a captured chat call/capture and encode, the answer parsed first"),
            us("AnoSys body of a captured chat call/capture and encode, the answer kept as text"), "us", "-"),
        pair("the same, on the caller's thread (async-openai layer, made into its record on the extraction thread)",
             "serde_json::from_slice of the body", "deferred", "<= 1.5x"),
        pair("a JSON-lines line of that call, its content written out (write_json_expanded)",
             "expanding a copy of the record, then writing it (the way before)", "jsonl line", "-"),
    ]
    stream = [k for k in r if k.startswith("stream of ")]
    if stream:
        chunks = int(re.search(r"\d+", stream[0]).group(0))
        row = pair(f"per stream chunk above the parse (Rust accumulator, {chunks} chunks)", "parsing each chunk's JSON",
                   stream[0], "<= 200 ns above the parse", unit="ns", per=chunks)
        if row.base is not None and row.value is not None:
            row.note = f"{row.value - row.base:+.0f} ns a chunk; " + row.note
        rows.append(row)
    return rows


def store(quick: bool) -> List[Row]:
    run(["cargo", "bench", "-p", "anosys", "--bench", "store", "--", *criterion_args(quick)], 1200,
        log_name="store")
    m = criterion_medians()
    n = 256
    rate = lambda key: n / (m[key] / 1e9) if key in m else None  # noqa: E731
    base = rate("store/serialize 256 records to JSON (baseline)")
    ratio = lambda value: (base / value) if base and value else None  # noqa: E731
    # The store as the pipeline writes it: the SQLite sink (its WAL
    # checkpointed on a thread of its own), and one connection's inserts
    # alone (SQLite's own checkpoints on the writing thread).
    sink, alone = rate("store/SqliteSink::export of 256 records"), rate("store/insert 256 records into SQLite")
    return [Row("records into the SQLite store (the SQLite sink, as the pipeline writes it)", "serialising them to JSON",
                base, sink, "rec/s", ">= 100,000 rec/s", ratio=ratio(sink),
                note="ratio: time per record against the baseline's"),
            Row("the same, one connection's inserts alone (checkpoints on the writing thread)", "serialising them to JSON",
                base, alone, "rec/s", "-", ratio=ratio(alone))]


def delivery(quick: bool) -> List[Row]:
    n = "20000" if quick else "100000"
    out = run(["cargo", "bench", "-p", "anosys", "--bench", "delivery", "--", "healthy"], 1200,
              env={"ANOSYS_BENCH_RECORDS": n}, log_name="delivery")
    found = re.search(r"healthy records=(\d+) seconds=([\d.]+) rate=(\d+)", out)
    rate = float(found.group(3)) if found else None
    cpu = re.search(r"healthy .*client=([\d.]+) stand_in=([\d.]+) caller=([\d.]+)", out)
    note = f"{n} records"
    if cpu:
        note += f"; CPU a record: pipeline {cpu.group(1)} us, stand-in {cpu.group(2)} us, caller {cpu.group(3)} us"
    return [Row("delivery to a loopback AnoSys stand-in, one process", "-", None, rate, "rec/s",
                ">= 50,000 rec/s", note=note)]


def python(quick: bool) -> List[Row]:
    if not shutil.which("python3"):
        return [Row("Python package", "-", None, None, "", "", note="skipped: no python3")]
    # The in-process pairs (this part's goal rows, 32 pairs of blocks of
    # 100 real calls for each kind) run in the first round only: three runs
    # of them took 12 of the 17 minutes of this part in a slow hour. Each
    # variant's process warms up with 100 calls of each kind (the script's
    # own default is 200).
    n, rounds, capture = ("300", "2", "2000") if quick else ("500", "3", "5000")
    out = run([sys.executable, "bench/python_overhead.py", "--n", n, "--rounds", rounds, "--capture-n", capture,
               "--warmup", "100", "--in-process-runs", "1"], 1800, log_name="python")
    return in_process_rows("Python", out, "the caller's thread", "openai 3.57", "CPU of the calling thread")


def in_process_rows(lang: str, out: str, where: str, client: str, cpu: str) -> List[Row]:
    """The package's work per call measured inside real calls (an
    instrumented and a bare client interleaved in one process, a canned
    reply, no HTTP): the rows the goal is read from. The capture-alone loop
    leaves out the wrapper around the client and runs with warm caches, so
    it reads several times lower; it stays, as the engine's part."""
    rows = overhead_rows(lang, out, where)
    rows[-1].what = f"{lang}: the capture work alone, in a loop (the one-step record of a plain call)"
    rows[-1].goal = "-"
    for i, kind in enumerate(("plain", "stream")):
        found = re.search(rf"^anosys on {re.escape(where)} in a real {kind} call[^:]*: ([\d.-]+) us added to the "
                          rf"bare client's ([\d.]+) us \(middle half of the pairs ([\d.-]+) to ([\d.-]+)\)", out, re.M)
        what = f"{lang}: the package's work on {where} in a real {kind} chat call ({cpu}; inside {client}'s own, a canned reply, no HTTP)"
        goal = "<= 10 us" if kind == "plain" else "-"
        if not found:
            rows.insert(i, Row(what, "-", None, None, "us", goal, note="see target/bench-all log"))
            continue
        added, bare, lo, hi = (float(found.group(j)) for j in range(1, 5))
        rows.insert(i, Row(what, "the bare client's own work", bare, added, "us", goal,
                           note=f"interleaved pairs; middle half {lo:.1f} to {hi:.1f} us"))
    # Per stream event, the issue's goal for the packages' stream chunks.
    found = re.search(rf"^anosys on {re.escape(where)} per stream event \(real stream calls of (\d+) and (\d+) events"
                      rf"(?:[^:]*?in blocks of (\d+) and (\d+) calls)?[^:]*: "
                      rf"([\d.-]+) ns against (\S+) of the event's data ([\d.]+) ns", out, re.M)
    what = f"{lang}: per stream event on {where}, above the parse (real stream calls, one network chunk an event)"
    if found:
        few, many, few_block, many_block, added, parser, parse = found.groups()
        blocks = f" (blocks of {few_block} and {many_block} calls)" if few_block else ""
        rows.insert(2, Row(what, f"{parser} of the event's data", float(parse), float(added), "ns",
                           "<= 200 ns above the parse",
                           note=f"the added work of a stream of {many} events less one of {few}{blocks}, a share for "
                                "each event more"))
    else:
        rows.insert(2, Row(what, "-", None, None, "ns", "<= 200 ns above the parse", note="see target/bench-all log"))
    # A chat that carries a 41 KB history (Node prints it), without a goal.
    found = re.search(rf"^anosys on {re.escape(where)} in a real chat call with a 41 KB history[^:]*: ([\d.-]+) us added "
                      rf"to the bare client's ([\d.]+) us \(middle half of the pairs ([\d.-]+) to ([\d.-]+)\)", out, re.M)
    if found:
        added, bare, lo, hi = (float(found.group(j)) for j in range(1, 5))
        rows.insert(3, Row(f"{lang}: the same, a plain chat call with a 41 KB history ({cpu})", "the bare client's own work",
                           bare, added, "us", "-", note=f"interleaved pairs; middle half {lo:.1f} to {hi:.1f} us"))
    # The package's own code in a real plain call, timed at its edges
    # (Python prints it): the precise reading of what the pairs above read
    # within their spread, without any slowing of the client's own work.
    found = re.search(rf"^anosys's own code on {re.escape(where)} in a real plain call, timed at its edges[^:]*: "
                      rf"([\d.-]+) us \(middle half of the calls ([\d.-]+) to ([\d.-]+); the markers alone ([\d.]+) us\)", out, re.M)
    if found:
        added, lo, hi, markers = (float(found.group(j)) for j in range(1, 5))
        bare = rows[0].base if rows and "real plain" in rows[0].what else None
        rows.insert(1, Row(f"{lang}: the package's own code on {where} in a real plain chat call, timed at its edges "
                           f"(wall time between markers outside and inside its wrappers, less the same on the bare client)",
                           "the bare client's own work", bare, added, "us", "-",
                           note=f"middle half of the calls {lo:.1f} to {hi:.1f} us; the markers alone {markers:.1f} us"))
    return rows


def node(quick: bool) -> List[Row]:
    if not shutil.which("node"):
        return [Row("Node package", "-", None, None, "", "", note="skipped: no node")]
    n, rounds, capture = ("300", "2", "2000") if quick else ("500", "3", "5000")
    out = run(["node", "bench/node_overhead.mjs", "--n", n, "--rounds", rounds, "--capture-n", capture,
               "--warmup", "100", "--in-process-runs", "1"], 1800, log_name="node")
    return in_process_rows("Node", out, "the event loop", "openai 7.59", "CPU of the event loop's thread")


def overhead_rows(lang: str, out: str, where: str) -> List[Row]:
    # "bare  999.7 ..." (Python) or "bare  bare  729.5 ..." (Node: the baseline's name first)
    bare = re.search(r"^bare\s+(?:bare\s+|-\s+)?([\d.]+)\s", out, re.M)
    work = re.search(r"^anosys capture work alone[^:]*: ([\d.]+) us per call.*?CPU of the [^0-9]*?([\d.]+) us", out, re.M)
    base = float(bare.group(1)) if bare else None
    value = float(work.group(2)) if work else None
    note = f"wall {float(work.group(1)):.1f} us" if work else "see target/bench-all log"
    # Node also prints each variant's peak RSS ("anosys  161.9 MiB  1.20  ...").
    peak = re.search(r"^anosys\s+([\d.]+) MiB\s+([\d.]+)", out, re.M)
    if peak:
        note += f"; peak RSS {float(peak.group(1)):.0f} MiB, {float(peak.group(2)):.2f}x the bare client's"
    return [Row(f"{lang}: the package's work on {where} per chat call (its CPU)", "a bare loopback call", base, value,
                "us", "<= 10 us", note=note)]


def proxy(quick: bool) -> List[Row]:
    # 1,000 requests a run, at most 6 s of them (600 at 100 req/s, the
    # chats with a history too), so the whole of bench/all.py stays under
    # 15 minutes; LiteLLM saturates near 50 req/s, so its runs are shorter
    # (150 requests: about 3 s each).
    env = {"RATES": "100 500" if quick else "100 500 1000", "REQUESTS": "600" if quick else "1000",
           "RUN_SECONDS": "6", "LITELLM_REQUESTS": "100" if quick else "150"}
    out = run(["bash", "bench/proxy_load.sh"], 2400, env=env, log_name="proxy")
    rows: List[Row] = []
    for line in out.splitlines():
        # Lines the script prints for this table: "SUMMARY what|baseline|base|value|unit|goal".
        if line.startswith("SUMMARY "):
            what, baseline, base, value, unit, goal = line[len("SUMMARY "):].split("|")
            rows.append(Row(what, baseline, float(base) if base else None, float(value) if value else None,
                            unit, goal))
    return rows or [Row("proxy", "-", None, None, "", "", note="no SUMMARY lines; see target/bench-all/proxy.log")]


PARTS: Dict[str, Callable[[bool], List[Row]]] = {
    "engine": engine, "store": store, "delivery": delivery, "python": python, "node": node, "proxy": proxy,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter measurements (a smoke run)")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ",".join(PARTS))
    parser.add_argument("--self-test", action="store_true", help="check the goal column's checks, then stop")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows: List[Row] = []
    took: List[str] = []
    for part in [p.strip() for p in args.only.split(",") if p.strip()]:
        if part not in PARTS:
            parser.error(f"unknown part {part!r}")
        part_started = time.time()
        try:
            rows.extend(PARTS[part](args.quick))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            rows.append(Row(part, "-", None, None, "", "", note=f"failed: {e}"))
        took.append(f"{part} {time.time() - part_started:.0f} s")
    header = ["what", "baseline (same run)", "measured", "ratio", "goal", "met", "note"]
    table = [header, ["---"] * len(header)] + [r.cells() for r in rows]
    print("\n".join("| " + " | ".join(c) + " |" for c in table))
    judged = [r.met() for r in rows if r.met() is not None]
    print(f"\n{len(rows)} figures in {time.time() - started:.0f} s, {sum(judged)} of {len(judged)} goals met; "
          f"logs in target/bench-all/\n(by part, builds and installs included: {', '.join(took)})")
    (OUT / "summary.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
