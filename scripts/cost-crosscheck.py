#!/usr/bin/env python3
"""Cross-checks anosys' costs against LiteLLM's own cost functions.

Feeds every payload of crates/anosys/tests/cost_golden/golden.jsonl (whose
expected costs `cargo test -p anosys --test cost_golden` proves the engine
computes) to LiteLLM's `cost_per_token` (chat, responses, embeddings) or
`completion_cost` (images), with the same model string, usage and served
tier, and prints every difference. It is not part of `cargo test` or CI:
LiteLLM is a heavy install.

Run it with a venv holding the litellm release the price snapshot came from
(see crates/anosys/src/cost/data/README.md):

    python3 -m venv /tmp/litellm-venv
    /tmp/litellm-venv/bin/pip install litellm==1.110.2
    /tmp/litellm-venv/bin/python scripts/cost-crosscheck.py [--all]

LiteLLM reads its bundled price map (LITELLM_LOCAL_MODEL_COST_MAP), the same
file anosys compiles in. Exit status 0 either way: the differences are for a
person to read (the README's "Cost" section explains each kind).
"""

import json
import os
import sys
from collections import Counter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm.types.utils import (  # noqa: E402
    CompletionTokensDetailsWrapper,
    ImageResponse,
    ImageUsage,
    PromptTokensDetailsWrapper,
    Usage,
)

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "crates", "anosys", "tests", "cost_golden", "golden.jsonl")


def num(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def normalised(usage):
    """(input incl. cache, output incl. reasoning, cache reads, cache writes, reasoning) as anosys reads them."""
    u = usage or {}
    prompt = num(u.get("prompt_tokens"))
    native = prompt is None
    if prompt is None:
        prompt = num(u.get("input_tokens"))
    completion = num(u.get("completion_tokens"))
    if completion is None:
        completion = num(u.get("output_tokens"))
    details = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
    cached = num(details.get("cached_tokens"))
    if cached is None:
        cached = num(u.get("cache_read_input_tokens")) or 0
    write = num(u.get("cache_creation_input_tokens"))
    if write is None:
        write = num(details.get("cache_creation_tokens")) or num(details.get("cache_write_tokens")) or 0
    if native and prompt is not None:
        prompt += (num(u.get("cache_read_input_tokens")) or 0) + (num(u.get("cache_creation_input_tokens")) or 0)
    out_details = u.get("completion_tokens_details") or u.get("output_tokens_details") or {}
    reasoning = num(out_details.get("reasoning_tokens")) or 0
    return prompt, completion, cached, write, reasoning


def litellm_cost(case):
    """LiteLLM's (total, prompt part, completion part), or a string saying why it gave none."""
    model = case.get("response_model") or case["model"]
    op = case["operation"]
    tier = case.get("service_tier")
    try:
        if op == "images":
            request = case.get("request") or {}
            n = case.get("images", 1 if case.get("usage") else 0)
            response = ImageResponse(data=[{"url": f"https://img/{i}.png"} for i in range(n)])
            if case.get("usage"):
                response.usage = ImageUsage(**case["usage"])
            total = litellm.completion_cost(
                completion_response=response, model=model, call_type="image_generation",
                size=request.get("size"), quality=request.get("quality"), n=n,
            )
            return total, 0.0, total
        prompt, completion, cached, write, reasoning = normalised(case.get("usage"))
        if prompt is None and completion is None:
            return "no usage"
        prompt, completion = prompt or 0, completion or 0
        if op == "embeddings":
            p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt, completion_tokens=0, call_type="embedding")
            return p + c, p, c
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=cached, cache_creation_tokens=write or None),
            completion_tokens_details=CompletionTokensDetailsWrapper(reasoning_tokens=reasoning),
            cache_creation_input_tokens=write,
            cache_read_input_tokens=cached,
        )
        p, c = litellm.cost_per_token(
            model=model, prompt_tokens=prompt, completion_tokens=completion, usage_object=usage, service_tier=tier,
        )
        return p + c, p, c
    except Exception as e:  # noqa: BLE001 - LiteLLM raises bare Exceptions for unmapped models
        return f"litellm error: {type(e).__name__}: {str(e).splitlines()[0][:140]}"


def close(a, b):
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)


def main():
    show_all = "--all" in sys.argv
    kinds = Counter()
    differences = 0
    cases = [json.loads(line) for line in open(GOLDEN) if line.strip()]
    for n, case in enumerate(cases, 1):
        ours = case["expected"]
        theirs = litellm_cost(case)
        label = f"line {n}: {case['model']!r} ({case['operation']}"
        label += f", tier {case['service_tier']}" if case.get("service_tier") else ""
        label += f") - {case['why']}"
        if ours["status"] != "priced":
            if isinstance(theirs, str):
                if show_all:
                    print(f"same     {label}: {ours['status']} / {theirs}")
                continue
            differences += 1
            kinds["we do not price, LiteLLM does"] += 1
            print(f"DIFFERS  {label}\n         anosys {ours['status']}; LiteLLM ${theirs[0]:.12g}")
            continue
        if isinstance(theirs, str):
            differences += 1
            kinds["we price, LiteLLM does not"] += 1
            print(f"DIFFERS  {label}\n         anosys ${ours['total']:.12g} ({ours['model']}); LiteLLM {theirs}")
            continue
        total, prompt_part, completion_part = theirs
        our_prompt = ours.get("input", 0) + ours.get("cached_input", 0) + ours.get("cache_write", 0)
        if close(total, ours["total"]) and (case["operation"] == "images" or close(prompt_part, our_prompt)):
            if show_all:
                print(f"same     {label}: ${total:.12g}")
            continue
        differences += 1
        kinds[f"amount ({case['operation']}{', tier ' + case['service_tier'] if case.get('service_tier') else ''})"] += 1
        print(
            f"DIFFERS  {label}\n         anosys ${ours['total']:.12g} (in ${our_prompt:.12g}, out ${ours['output']:.12g}, "
            f"entry {ours['model']}); LiteLLM ${total:.12g} (in ${prompt_part:.12g}, out ${completion_part:.12g})"
        )
    print(f"\n{len(cases)} payloads, {differences} differences")
    for kind, count in kinds.most_common():
        print(f"  {count:4d}  {kind}")


if __name__ == "__main__":
    main()
