"""Parity with the original AnoSys Python SDK (``anosys-sdk-core`` and
``anosys-sdk-openai`` 1.0.14, from PyPI): the same questions are put to the
original, installed in its own venv (``ANOSYS_ORIGINAL_PYTHON``, made by
scripts/test.sh), and to this package's ``anosys_sdk_core`` /
``anosys_sdk_openai``, each in a process of its own
(tests/original_probe.py), against the same loopback resolver and backend;
the answers must agree, except where the README's "Moving from the
original SDK" says why they differ (listed here too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "original_probe.py")
CORE = "anosys_sdk_core"
OPENAI = "anosys_sdk_openai"

#: Public names of the original's modules that are not provided, and why
#: (the README lists the same).
NOT_PROVIDED = {
    # The original encoder's column types; the engine's are in MAPPINGS.md.
    f"{CORE}.models": {"OTEL_AI_VALID_TYPES", "CLAUDE_VALID_TYPES", "CORE_VALID_TYPES"},
}

#: Signatures that differ on purpose.
SIGNATURE_DIFFERENCES = {
    # api_url may be left out: anosys then sends where it is configured to.
    "setup_tracing": "api_url has a default (None)",
}


def original_python() -> str:
    path = os.environ.get("ANOSYS_ORIGINAL_PYTHON")
    if not path or not os.path.exists(path):
        pytest.fail(
            "ANOSYS_ORIGINAL_PYTHON must name a Python with anosys-sdk-openai==1.0.14 and "
            "anosys-sdk-core==1.0.14 installed (scripts/test.sh makes target/original-venv)"
        )
    return path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        owner = self.server.owner  # type: ignore[attr-defined]
        url = urllib.parse.urlsplit(self.path)
        key = urllib.parse.parse_qs(url.query).get("apikey", [""])[0]
        if url.path != "/resolve":
            return self._send(404, {})
        if key == "sk-good":
            return self._send(200, {"apiUrl": f"{owner.url}/log/good"})
        if key == "sk-no-url":
            return self._send(200, {"other": 1})
        if key == "sk-server-error":
            return self._send(500, {"error": "down"})
        return self._send(404, {"error": "unknown key"})

    def do_POST(self) -> None:
        owner = self.server.owner  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.startswith("/fail"):
            return self._send(500, {"error": "refused"})
        with owner.lock:
            owner.posts.append((self.path, json.loads(body)))
        self._send(200, {"ok": True})


class Stand_in:
    """The AnoSys resolver and log API, on the loopback."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.lock = threading.Lock()
        self.posts: List[Any] = []
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def taken(self, path: str) -> List[Any]:
        with self.lock:
            return [body for p, body in self.posts if p == path]


@pytest.fixture(scope="module")
def stand_in():
    server = Stand_in()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def stand_in_env(stand_in: Stand_in, **extra: str) -> Dict[str, str]:
    """This environment without anosys's or OpenTelemetry's variables, the
    resolver the stand-in's, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANOSYS_", "OTEL_"))}
    env.update(ANOSYS_RESOLVER_URL=f"{stand_in.url}/resolve", ANOSYS_LOG_LEVEL="off", **extra)
    return env


def ask(python: str, questions: List[Dict[str, Any]], stand_in: Stand_in) -> List[Dict[str, Any]]:
    env = stand_in_env(stand_in)
    out = subprocess.run(
        [python, PROBE], input=json.dumps(questions), capture_output=True, text=True, timeout=120, env=env,
        cwd=HERE,
    )
    assert out.returncode == 0, out.stderr
    answers = json.loads(out.stdout)
    assert len(answers) == len(questions)
    return answers


def ask_both(questions: List[Dict[str, Any]], stand_in: Stand_in):
    return ask(original_python(), questions, stand_in), ask(sys.executable, questions, stand_in)


def test_every_public_name_of_the_original_is_here(stand_in):
    top = [{"ask": "names", "module": m} for m in (CORE, OPENAI)]
    homes = [{"ask": "module_of", "module": m} for m in (CORE, OPENAI)]
    original, ours = ask_both(top + homes, stand_in)
    # The packages' own lists are the same.
    assert ours[:2] == original[:2]
    assert all("ok" in a for a in original)
    # Each name also where the original defines it (`from anosys_sdk_core.encryption import encrypt`).
    modules = sorted({home for a in original[2:] for home in a["ok"].values() if home and home.startswith(CORE[:7])})
    assert f"{CORE}.encryption" in modules and f"{OPENAI}.instrumentor" in modules
    sub = [{"ask": "names", "module": m} for m in modules]
    original_sub, ours_sub = ask_both(sub, stand_in)
    for question, theirs, mine in zip(sub, original_sub, ours_sub):
        module = question["module"]
        assert "ok" in mine, f"{module} cannot be imported here: {mine}"
        missing = set(theirs["ok"]) - set(mine["ok"]) - NOT_PROVIDED.get(module, set())
        assert not missing, f"{module} lacks {sorted(missing)}"
    for answer in original[2:]:
        for name, home in answer["ok"].items():
            if home is None:  # a constant: no home to tell (its module's names were compared above)
                continue
            mine = ours_sub[modules.index(home)]["ok"] if home in modules else None
            assert mine is not None and name in mine, f"{name} is not in {home}"


def test_signatures_match(stand_in):
    names = ask(original_python(), [{"ask": "names", "module": OPENAI}, {"ask": "names", "module": CORE}], stand_in)
    questions = [
        {"ask": "signature", "module": module, "name": name}
        for module, answer in zip((OPENAI, CORE), names)
        for name in answer["ok"]
        if not name.isupper() and name != "BASE_KEY_MAPPING"
    ]
    original, ours = ask_both(questions, stand_in)
    compared = 0
    for question, theirs, mine in zip(questions, original, ours):
        assert "ok" in theirs and "ok" in mine, (question, theirs, mine)
        if question["name"] in SIGNATURE_DIFFERENCES:
            # The original's parameters, in order, still fit.
            assert [p[0] for p in mine["ok"]] == [p[0] for p in theirs["ok"]]
            continue
        assert mine["ok"] == theirs["ok"], question["name"]
        compared += 1
    assert compared >= 15


def test_constants_match(stand_in):
    questions = [
        {"ask": "value", "module": CORE, "name": "ANOSYS_ENCRYPTION_PREFIX"},
        {"ask": "value", "module": CORE, "name": "DEFAULT_ENCRYPTED_COLUMNS"},
        {"ask": "value", "module": f"{CORE}.models", "name": "DEFAULT_STARTING_INDICES"},
        {"ask": "value", "module": f"{CORE}.config", "name": "API_KEY_RESOLVER_URL"},
        {"ask": "value", "module": CORE, "name": "BASE_KEY_MAPPING"},
    ]
    original, ours = ask_both(questions, stand_in)
    assert ours[:4] == original[:4]
    theirs, mine = original[4]["ok"], ours[4]["ok"]
    # Every key goes to the original's column; anosys adds three of its own.
    assert {k: mine.get(k) for k in theirs} == theirs
    assert set(mine) - set(theirs) == {"anosys.record_id", "gen_ai.usage.cost", "links"}


def calls(module: str, name: str, cases: List[Any]) -> List[Dict[str, Any]]:
    questions = []
    for case in cases:
        args, env, unset = case if isinstance(case, tuple) else (case, {}, [])
        questions.append({"ask": "call", "module": module, "name": name, "args": args, "env": env, "unset": unset})
    return questions


ENCRYPTION_VARS = ["ANOSYS_ENCRYPTION_KEY", "ANOSYS_ENCRYPTED_COLUMNS", "ANOSYS_ENCRYPTES_COLUMNS"]


def test_encryption_matches(stand_in):
    passphrases = ["a passphrase", "", "ünïcødé ☃", "x" * 100]
    keys, _ = ask_both(calls(CORE, "derive_256_bit_key", [[p] for p in passphrases]), stand_in)
    _, our_keys = ask_both(calls(CORE, "derive_256_bit_key", [[p] for p in passphrases]), stand_in)
    assert our_keys == keys
    key = keys[0]["ok"]
    texts = ["", "a", "exactly sixteen!", "a longer prompt: " + "é" * 40, '{"role": "user", "content": "hi"}']
    encrypted, ours = ask_both(calls(CORE, "encrypt", [[t, key] for t in texts]), stand_in)
    assert ours == encrypted
    both_forms = [["enc:" + e["ok"], key] for e in encrypted] + [[e["ok"], key] for e in encrypted]
    decrypted, ours = ask_both(calls(CORE, "decrypt", both_forms), stand_in)
    assert ours == decrypted
    assert [d["ok"] for d in decrypted] == texts + texts
    # Not Base64: both refuse.
    bad, ours = ask_both(calls(CORE, "decrypt", [["enc:not base64!", key]]), stand_in)
    assert "error" in bad[0] and "error" in ours[0]


def test_encryption_settings_match(stand_in):
    unset = ENCRYPTION_VARS
    key_cases = [([], {}, unset)] + [([], {"ANOSYS_ENCRYPTION_KEY": v}, unset[1:]) for v in
                                     ["", "   ", "null", "None", "UNDEFINED", " s3cret ", "pass phrase"]]
    column_cases = [
        ([], {}, unset),
        ([], {"ANOSYS_ENCRYPTED_COLUMNS": "llm_input, cvs199,,gen_ai_output_messages "}, unset[2:]),
        ([], {"ANOSYS_ENCRYPTES_COLUMNS": "cvs4"}, unset[1:2]),
        ([], {"ANOSYS_ENCRYPTED_COLUMNS": "llm_output", "ANOSYS_ENCRYPTES_COLUMNS": "cvs4"}, []),
        ([], {"ANOSYS_ENCRYPTED_COLUMNS": " , "}, unset[2:]),
    ]
    questions = calls(CORE, "get_encryption_key", key_cases) + calls(CORE, "get_target_columns", column_cases)
    original, ours = ask_both(questions, stand_in)
    assert ours == original
    assert [a["ok"] for a in original[:3]] == [None, None, None]


def test_encrypt_payload_matches(stand_in):
    body = {
        "llm_input": "the prompt",
        "llm_output": 42,  # not text: left alone, with a warning
        "cvs199": '{"raw": true}',
        "gen_ai_input_messages": "enc:already",
        "gen_ai_output_messages": None,
        "otel_name": "chat gpt-4o",
        "cvn3": 443,
    }
    with_key = {"ANOSYS_ENCRYPTION_KEY": "k3y"}
    cases = [
        ([body], with_key, ENCRYPTION_VARS[1:]),
        ([[body, {"llm_input": "second"}, "not a dict"]], with_key, ENCRYPTION_VARS[1:]),
        ([body], {"ANOSYS_ENCRYPTION_KEY": "k3y", "ANOSYS_ENCRYPTED_COLUMNS": "otel_name,cvn3"}, []),
        ([body], {}, ENCRYPTION_VARS),
        ([None], with_key, []),
        (["text"], with_key, []),
    ]
    original, ours = ask_both(calls(CORE, "encrypt_payload", cases), stand_in)
    assert ours == original
    encrypted = original[0]["ok"]
    assert encrypted["llm_input"].startswith("enc:") and encrypted["cvs199"].startswith("enc:")
    assert encrypted["llm_output"] == 42 and encrypted["gen_ai_input_messages"] == "enc:already"


def test_config_helpers_match(stand_in):
    values = ["1", "true", "YES", " on ", "0", "false", "No", "off", "", "maybe"]
    bools = [(["ANOSYS_FLAG"], {"ANOSYS_FLAG": v}, []) for v in values]
    bools += [(["ANOSYS_FLAG", False], {}, ["ANOSYS_FLAG"]), (["ANOSYS_FLAG"], {}, ["ANOSYS_FLAG"])]
    resolves = [
        (["sk-good"], {}, []),
        (["sk-no-url"], {}, []),
        (["sk-unknown"], {}, []),
        (["sk-server-error", 2], {}, []),
        ([], {}, ["ANOSYS_API_KEY"]),
        ([], {"ANOSYS_API_KEY": "sk-good"}, []),
    ]
    urls = [(["http://127.0.0.1:1/given"], {}, []), ([], {"ANOSYS_API_KEY": "sk-good"}, [])]
    questions = calls(CORE, "get_env_bool", bools) + calls(CORE, "resolve_api_key", resolves)
    questions += calls(CORE, "get_api_url", urls)
    original, ours = ask_both(questions, stand_in)
    assert ours == original
    good = f"{stand_in.url}/log/good"
    assert original[len(bools)]["ok"] == good
    assert original[-1]["ok"] == good


def test_user_context_matches(stand_in):
    cases = [{"session_id": "s-1", "token": "t-1", "user_id": "u-42"}, {"user_id": "u-7"}, None]
    questions = [{"ask": "user_context", "module": f"{CORE}.context", "value": v} for v in cases]
    original, ours = ask_both(questions, stand_in)
    assert ours == original
    assert original[0]["ok"][1:] == ["s-1", "t-1"]


CLIENT = """
import json, sys
from anosys_sdk_core import AnosysClient
url = sys.argv[1]
sent = AnosysClient(api_url=url + "/log/client").send(json.loads(sys.argv[2]))
refused = AnosysClient(api_url=url + "/fail").send({"llm_input": "x"})
unreachable = AnosysClient(api_url="http://127.0.0.1:9/log", timeout=2).send({"llm_input": "x"})
resolved = AnosysClient(api_key="sk-good").api_url
many = AnosysClient(api_url=url + "/log/batch").send_batch([{"n": 1}, {"n": 2}])
print(json.dumps([sent.status_code, sent.json(), refused, unreachable, resolved, [r.status_code for r in many]]))
"""


def test_anosys_client_matches(stand_in):
    """The same body arrives from both clients (encrypted the same way),
    and failures are None in both."""
    body = {"llm_input": "the prompt", "cvs200": "client-test", "cvn3": 7}
    results = []
    for python in (original_python(), sys.executable):
        env = stand_in_env(stand_in, ANOSYS_ENCRYPTION_KEY="k3y")
        out = subprocess.run([python, "-c", CLIENT, stand_in.url, json.dumps(body)], capture_output=True,
                             text=True, timeout=60, env=env, cwd=HERE)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        assert "POST failed" in out.stderr
    assert results[1] == results[0]
    assert results[0] == [200, {"ok": True}, None, None, f"{stand_in.url}/log/good", [200, 200]]
    received = stand_in.taken("/log/client")
    assert len(received) == 2 and received[0] == received[1]
    assert received[0]["llm_input"].startswith("enc:") and received[0]["cvn3"] == 7
    assert stand_in.taken("/log/batch") == [{"n": 1}, {"n": 2}] * 2


LOGGER = """
import json, sys
import openai
from opentelemetry import trace
from anosys_sdk_openai import AnosysOpenAILogger
import anosys

logger = AnosysOpenAILogger(get_user_context=lambda: {"session_id": "s-9"})
client = openai.OpenAI(api_key="sk-test-not-a-real-key", base_url=sys.argv[1] + "/v1", max_retries=0)
with trace.get_tracer("app").start_as_current_span("outer " + sys.argv[2]):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
AnosysOpenAILogger()  # again: no second exporter, no second record
report = anosys.flush(10)
print(json.dumps([logger.tracing, report.get("delivered")]))
"""


def test_original_openai_logger_records_calls_and_the_global_providers_spans(backend, upstream):
    """``anosys_sdk_openai.AnosysOpenAILogger()``, as the original: every
    openai call, and every span of the global tracer provider."""
    import uuid

    tag = uuid.uuid4().hex[:10]
    env = dict(os.environ, ANOSYS_API_URL=backend.url + "/log")
    out = subprocess.run([sys.executable, "-c", LOGGER, upstream.url, tag], capture_output=True, text=True,
                         timeout=60, env=env, cwd=HERE)
    assert out.returncode == 0, out.stderr
    tracing, delivered = json.loads(out.stdout.strip().splitlines()[-1])
    assert tracing is True and delivered >= 2
    outer = backend.one(lambda r: r.get("otel_name") == f"outer {tag}")
    chat = backend.one(lambda r: r.get("otel_parent_span_id") == outer["otel_span_id"])
    assert chat["otel_trace_id"] == outer["otel_trace_id"]
    assert chat["gen_ai_request_model"] == "gpt-4o-mini"
    assert chat.json("user_context") == {"session_id": "s-9"}


def test_importing_the_original_names_reads_a_dotenv_file_as_the_original_did(tmp_path):
    """python-dotenv's ``load_dotenv()`` from the package's folder upwards,
    as the original's import did: here a ``.env`` at the venv's root. A
    variable already set is not overridden."""
    path = os.path.join(sys.prefix, ".env")
    assert not os.path.exists(path), f"{path} exists already"
    try:
        with open(path, "w") as f:
            f.write("ANOSYS_TEST_FROM_DOTENV=read\nANOSYS_TEST_ALREADY_SET=from-file\n")
        # A script file: with `python -c`, python-dotenv looks from the
        # working directory instead.
        script = tmp_path / "app.py"
        script.write_text("import os, anosys_sdk_openai\n"
                          "print(os.environ.get('ANOSYS_TEST_FROM_DOTENV'), os.environ['ANOSYS_TEST_ALREADY_SET'])\n")
        env = dict(os.environ, ANOSYS_TEST_ALREADY_SET="from-environment")
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env,
                             cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["read", "from-environment"]
    finally:
        os.remove(path)
