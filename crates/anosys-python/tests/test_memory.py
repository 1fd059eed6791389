"""The extension's memory in the application's process: its allocator
(mimalloc, built with ``no_thp``, as in the Node addon) never asks for
transparent huge pages, and the process's own THP setting is left as the
application had it.

mimalloc keeps the engine's allocations off glibc's arena, which the
calling thread's Python takes too; without ``no_thp`` it would ``madvise``
every region it maps for huge pages, so a 2 MiB page would be made
resident for a few records."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

CAPTURE = """
import json, re
status = lambda: open("/proc/self/status").read()
thp = lambda: (re.search(r"THP_enabled:\\s+(\\d)", status()) or [None, None])[1]
before = thp()
import anosys
from anosys import _native
request = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say this is a test"}]}).encode()
reply = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "This is a test. " * 50}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 250, "total_tokens": 262},
}).encode()
for _ in range(20):
    for _ in range(1000):
        _native.record_openai_call("http://127.0.0.1:9/v1/chat/completions", request, 0.001, reply, 200, None, None)
    anosys.flush(30)
huge = re.search(r"AnonHugePages:\\s+(\\d+)", open("/proc/self/smaps_rollup").read())
print(json.dumps({"before": before, "after": thp(), "huge": int(huge[1]) if huge else 0, "counters": anosys.counters()}))
"""


def thp_mode():
    """The system's THP mode (the bracketed word), or ``None``."""
    try:
        text = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    found = re.search(r"\[(\w+)\]", text)
    return found[1] if found else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_capturing_calls_makes_no_huge_pages_resident_and_leaves_the_process_thp_setting_alone(tmp_path):
    # 20,000 chat calls captured through the extension (a reply of about
    # 1 KB each), records written to a JSON-lines file; then what the
    # process holds.
    records = tmp_path / "records.jsonl"
    env = dict(os.environ, ANOSYS_SINKS="jsonl", ANOSYS_JSONL_PATH=str(records), ANOSYS_API_KEY="")
    run = subprocess.run([sys.executable, "-c", CAPTURE], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    # Every call captured and written.
    assert got["counters"]["captured"] == 20_000, got
    assert got["counters"]["delivered"] == 20_000, got
    assert len(records.read_text().splitlines()) == 20_000
    # The process's THP setting is the application's: the extension did
    # not turn it off for everyone (prctl PR_SET_THP_DISABLE).
    if got["before"] is not None:
        assert got["after"] == got["before"]
    # With THP on request only ("madvise", this machine's and Debian's
    # default) nothing in the process asks for huge pages, so none are
    # resident. ("always" hands them out without asking; "never" has none.)
    if thp_mode() == "madvise":
        assert got["huge"] == 0, f"AnonHugePages {got['huge']} kB"
