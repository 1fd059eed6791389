#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the recorded OpenAI exchanges.

Run from anywhere: python3 fuzz/seed_corpus.py (needs PyYAML)."""
import json, os, pathlib, yaml

here = pathlib.Path(__file__).resolve().parent
cassettes = here.parent / "crates/anosys/tests/fixtures/openai-cassettes"
for target in ("sse", "extract", "encode"):
    (here / "corpus" / target).mkdir(parents=True, exist_ok=True)
for i, path in enumerate(sorted(cassettes.glob("*.yaml"))):
    doc = yaml.safe_load(path.read_text())
    for j, x in enumerate(doc["interactions"]):
        body = x["response"]["body"]["string"].encode()
        request = (x["request"]["body"] or "null").encode()
        name = f"{path.stem}-{j}"
        if body.startswith(b"data:") or body.startswith(b"event:"):
            (here / "corpus/sse" / name).write_bytes(bytes([len(body) // 3 % 256]) + body)
        (here / "corpus/extract" / name).write_bytes(bytes([i % 7, j % 5]) + request + b"\0" + body)
        (here / "corpus/encode" / name).write_bytes(request)
