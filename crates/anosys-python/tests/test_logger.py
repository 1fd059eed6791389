"""``@anosys_logger``, the raw logger, ``setup_api``, delivery at exit and
after ``fork``; records checked at the AnoSys stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import anosys
from anosys import anosys_logger, anosys_raw_logger


def by_source(source):
    return lambda r: r.get("source") == source


def unique():
    return f"t-{uuid.uuid4().hex[:10]}"


def test_sync_function_inputs_output_caller(backend):
    src = unique()

    @anosys_logger(source=src)
    def add(a, b, *, scale=1):
        return (a + b) * scale

    line = sys._getframe().f_lineno + 1
    assert add(2, 3, scale=10) == 50
    r = backend.one(by_source(src))
    assert r["name"] == f"{__name__}.test_sync_function_inputs_output_caller.<locals>.add"
    assert r.json("input") == {"args": [2, 3], "kwargs": {"scale": 10}}
    assert r.json("output") == 50
    assert r["status_code"] == "OK"
    caller = r.json("caller")
    assert caller["function"] == "test_sync_function_inputs_output_caller"
    assert caller["file"] == __file__
    assert caller["line"] == line
    assert r["code.file.path"] == __file__
    assert r["otel_duration_ms"] >= 0


def test_exception_is_recorded_and_reraised_unchanged(backend):
    src = unique()

    class PaymentDeclined(Exception):
        pass

    @anosys_logger(source=src)
    def charge(cents):
        raise PaymentDeclined(f"card declined for {cents}")

    error = None
    try:
        charge(1200)
    except PaymentDeclined as e:
        error = e
    assert error is not None and str(error) == "card declined for 1200"
    r = backend.one(by_source(src))
    assert r["status_code"] == "ERROR"
    assert r["error"] == "true"
    assert r["error_type"] == f"{__name__}.{PaymentDeclined.__qualname__}"
    assert r["error_message"] == "card declined for 1200"
    stack = r["error_stack"]
    assert "Traceback (most recent call last)" in stack and "in charge" in stack
    assert r.json("input") == {"args": [1200], "kwargs": {}}


def test_async_function(backend):
    src = unique()

    @anosys_logger(source=src)
    async def fetch(n):
        await asyncio.sleep(0.01)
        return {"n": n, "when": datetime.date(2026, 11, 28)}

    async def main():
        return await fetch(7)

    assert asyncio.run(main())["n"] == 7
    r = backend.one(by_source(src))
    assert r.json("output") == {"n": 7, "when": "2026-11-28"}
    assert r.json("caller")["function"].endswith("main")
    assert r["otel_duration_ms"] >= 10


def test_async_exception_and_cancellation(backend):
    src = unique()

    @anosys_logger(source=src)
    async def fails():
        raise ValueError("bad input")

    @anosys_logger(source=src)
    async def hangs():
        await asyncio.sleep(60)

    async def main():
        with pytest.raises(ValueError):
            await fails()
        task = asyncio.ensure_future(hangs())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    records = backend.wait_for(by_source(src), count=2)
    failed = [r for r in records if r["name"].endswith("fails")][0]
    cancelled = [r for r in records if r["name"].endswith("hangs")][0]
    assert failed["error_type"] == "ValueError" and failed["error_message"] == "bad input"
    assert cancelled["anosys.outcome"] == "cancelled"


def test_generator_complete_and_closed_early(backend):
    src = unique()

    @anosys_logger(source=src)
    def count(n):
        for i in range(n):
            yield i

    assert list(count(3)) == [0, 1, 2]
    g = count(10)
    assert next(g) == 0 and next(g) == 1
    g.close()
    records = backend.wait_for(by_source(src), count=2)
    done = [r for r in records if r.get("anosys.outcome") is None][0]
    closed = [r for r in records if r.get("anosys.outcome") == "cancelled"][0]
    assert done.json("output") == [0, 1, 2]
    assert done["status_code"] == "OK"
    assert closed.json("output") == [0, 1]


def test_generator_send_and_throw_are_forwarded(backend):
    src = unique()

    @anosys_logger(source=src)
    def echo():
        got = None
        while True:
            try:
                got = yield got
            except KeyError:
                got = "recovered"

    g = echo()
    next(g)
    assert g.send("a") == "a"
    assert g.throw(KeyError("k")) == "recovered"
    g.close()
    r = backend.one(by_source(src))
    assert r.json("output") == [None, "a", "recovered"]


def test_generator_error(backend):
    src = unique()

    @anosys_logger(source=src)
    def boom():
        yield 1
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        list(boom())
    r = backend.one(by_source(src))
    assert r["error_type"] == "RuntimeError"
    assert r.json("output") == [1]


def test_async_generator(backend):
    src = unique()

    @anosys_logger(source=src)
    async def tokens():
        for t in ["Hel", "lo"]:
            await asyncio.sleep(0)
            yield t

    async def main():
        full = [t async for t in tokens()]
        partial = tokens()
        first = await partial.__anext__()
        await partial.aclose()
        return full, first

    full, first = asyncio.run(main())
    assert full == ["Hel", "lo"] and first == "Hel"
    records = backend.wait_for(by_source(src), count=2)
    assert sorted(r.json("output") for r in records) == [["Hel"], ["Hel", "lo"]]
    assert {r.get("anosys.outcome") for r in records} == {None, "cancelled"}


def test_nested_calls_share_a_trace(backend):
    src = unique()

    @anosys_logger(source=src)
    def inner(x):
        return x * 2

    @anosys_logger(source=src)
    def outer(x):
        return inner(x) + 1

    assert outer(4) == 9
    records = backend.wait_for(by_source(src), count=2)
    o = [r for r in records if r["name"].endswith("outer")][0]
    i = [r for r in records if r["name"].endswith("inner")][0]
    assert i["trace_id"] == o["trace_id"]
    assert i["parent_id"] == o["span_id"]
    assert o.get("parent_id") is None
    assert i.json("caller")["function"].endswith("outer")


def test_decorator_without_parentheses_and_odd_values(backend):
    @dataclasses.dataclass
    class Point:
        x: int
        y: float

    class Opaque:
        def __repr__(self):
            return "<Opaque thing>"

    @anosys_logger
    def odd(p, blob, big, nan, nested, opaque):
        return {1, 2}

    cyclic = []
    cyclic.append(cyclic)
    odd(Point(1, 2.5), b"\xff\x00", 2**80, float("nan"), cyclic, Opaque())
    r = backend.one(lambda r: r.get("name", "").endswith(".odd"))
    args = r.json("input")["args"]
    assert args[0] == {"x": 1, "y": 2.5}
    assert args[1] == "<2 bytes>"
    assert args[2] == str(2**80)
    assert args[3] == "NaN"
    assert "<max depth>" in repr(args[4])
    assert args[5] == "<Opaque thing>"
    assert sorted(r.json("output")) == [1, 2]
    assert r["source"] == __name__


def test_raw_logger(backend):
    marker = unique()
    assert anosys_raw_logger({"event": "user_action", "action": "button_click", "user_id": marker, "count": 3, "ok": True})
    r = backend.one(lambda r: r.get("user_id") == marker)
    assert r["action"] == "button_click"
    assert r["count"] == 3
    assert r["ok"] is True
    assert r.json("raw")["user_id"] == marker
    # dynamic slots: strings from cvs100, numbers from cvn3, booleans from cvb1
    assert r.mapping["user_id"].startswith("cvs") and int(r.mapping["user_id"][3:]) >= 100
    assert r.mapping["count"].startswith("cvn") and int(r.mapping["count"][3:]) >= 3
    assert r.mapping["ok"].startswith("cvb")


def test_alias_package_and_setup_api(backend):
    import AnosysLoggers

    assert AnosysLoggers.anosys_raw_logger is anosys_raw_logger
    assert AnosysLoggers.setup_decorator is anosys.setup_api
    with pytest.raises(ValueError, match="ANOSYS_API_URL|url"):
        anosys.setup_api("not a url")
    with pytest.raises(ValueError, match="starting_indices"):
        anosys.setup_api(None, {"strings": 5})
    anosys.setup_api(backend.url + "/log", {"string": 100, "number": 3, "bool": 1})
    marker = unique()
    anosys_raw_logger({"event": "after_setup", "marker": marker})
    backend.one(lambda r: r.get("marker") == marker)


def test_before_send_sees_changes_and_drops_records(backend):
    marker = unique()
    seen = []

    def callback(record):
        seen.append(record["name"])
        action = record["attributes"].get("action")
        if action == "drop":
            return None
        if action == "explode":
            raise RuntimeError("a broken callback")
        if action == "keep":
            return True
        record["attributes"]["team"] = "search"
        record["attributes"]["secret_note"] = "[masked]"
        record["raw"]["secret_note"] = "[masked]"
        return record

    anosys.set_before_send(callback)
    try:
        before = anosys.counters()
        assert anosys_raw_logger({"event": "changed", "marker": marker, "secret_note": "hunter2"})
        assert not anosys_raw_logger({"event": "dropped", "marker": marker, "action": "drop"})
        assert not anosys_raw_logger({"event": "exploded", "marker": marker, "action": "explode"})
        assert anosys_raw_logger({"event": "kept", "marker": marker, "action": "keep"})
        found = backend.wait_for(lambda r: r.get("marker") == marker, count=2)
        assert sorted(r["event"] for r in found) == ["changed", "kept"]
        changed = next(r for r in found if r["event"] == "changed")
        assert changed["secret_note"] == "[masked]"
        assert changed.json("raw")["secret_note"] == "[masked]"
        assert changed["team"] == "search"
        report = anosys.flush(5.0)
        assert report["filtered"] - before.get("filtered", 0) == 2
        assert len(seen) >= 4
    finally:
        anosys.set_before_send(None)
    other = unique()
    assert anosys_raw_logger({"event": "after", "marker": other, "action": "drop"})
    backend.one(lambda r: r.get("marker") == other)
    with pytest.raises(ValueError, match="callable"):
        anosys.set_before_send(42)


def test_flush_reports_counters():
    anosys_raw_logger({"event": "counted"})
    report = anosys.flush(5.0)
    assert report["completed"] is True
    assert report["pending"] == 0
    assert report["delivered"] >= 1
    assert anosys.counters()["captured"] >= report["delivered"]


def _run(code, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, capture_output=True, text=True, timeout=60)


def test_delivered_at_interpreter_exit(backend):
    marker = unique()
    out = _run(f"""
        import anosys
        @anosys.anosys_logger(source="exit-test")
        def work():
            return "{marker}"
        work()
        anosys.anosys_raw_logger({{"event": "bye", "marker": "{marker}"}})
        # no flush: delivered when the interpreter exits
    """)
    assert out.returncode == 0, out.stderr
    backend.one(lambda r: r.get("marker") == marker)
    fn = backend.one(lambda r: r.get("source") == "exit-test" and r.get("output") == marker)
    assert fn["name"] == "__main__.work"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_a_working_pipeline(backend):
    before = unique()
    anosys_raw_logger({"event": "before_fork", "marker": before})
    anosys.flush()
    marker = unique()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            anosys_raw_logger({"event": "in_child", "marker": marker, "pid": os.getpid()})
            report = anosys.flush(10.0)
            code = 0 if report["delivered"] >= 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    r = backend.one(lambda r: r.get("marker") == marker)
    assert r["pid"] == pid
    # and the parent still delivers
    after = unique()
    anosys_raw_logger({"event": "after_fork", "marker": after})
    backend.one(lambda r: r.get("marker") == after)
