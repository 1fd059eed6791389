#!/usr/bin/env python3
"""Writes golden.jsonl: usage payloads as they come on the wire, each with
the cost expected for it.

The prices below were copied by hand from
crates/anosys/src/cost/data/model_prices_and_context_window.json (litellm
1.110.2); the expected costs are the arithmetic on them written out here
(tokens x price per part), not anything the Rust engine computes. When the
price file is refreshed, re-check these numbers against it by hand, then run
`python3 make_golden.py` in this folder and `cargo test -p anosys --test
cost_golden`.

One JSON object per line:
  model            the request's model
  response_model   the response's model (optional)
  operation        chat | responses | completions | embeddings | images | messages
  request          more request fields (image size and quality)
  usage            the response's usage object, as sent (null: none)
  service_tier     the response's service_tier (optional)
  images           how many images the response holds (images only)
  expected         status, and when priced: total, input, output, model and,
                   when such tokens were reported, cached_input, cache_write,
                   reasoning; tier when a tier's prices were used
  why              one line
"""

import json
import os

# i: input, c: cache read, w: cache write, o: output, r: reasoning (per token, USD).
# flex/priority/batch: that tier's prices. above: {threshold: {...}} long-context prices.
P = {
    "gpt-4o": dict(i=2.5e-6, c=1.25e-6, o=1e-5, priority=dict(i=4.25e-6, c=2.125e-6, o=1.7e-5), batch=dict(i=1.25e-6, o=5e-6)),
    "gpt-4o-2024-08-06": dict(i=2.5e-6, c=1.25e-6, o=1e-5, priority=dict(i=4.25e-6, c=2.125e-6, o=1.7e-5), batch=dict(i=1.25e-6, o=5e-6)),
    "gpt-4o-mini": dict(i=1.5e-7, c=7.5e-8, o=6e-7, priority=dict(i=2.5e-7, c=1.25e-7, o=1e-6), batch=dict(i=7.5e-8, o=3e-7)),
    "gpt-4o-mini-2024-07-18": dict(i=1.5e-7, c=7.5e-8, o=6e-7, priority=dict(i=2.5e-7, c=1.25e-7, o=1e-6), batch=dict(i=7.5e-8, o=3e-7)),
    "gpt-4.1": dict(i=2e-6, c=5e-7, o=8e-6, priority=dict(i=3.5e-6, c=8.75e-7, o=1.4e-5), batch=dict(i=1e-6, o=4e-6)),
    "gpt-4.1-2025-04-14": dict(i=2e-6, c=5e-7, o=8e-6, priority=dict(i=3.5e-6, c=8.75e-7, o=1.4e-5), batch=dict(i=1e-6, o=4e-6)),
    "gpt-4.1-mini": dict(i=4e-7, c=1e-7, o=1.6e-6, priority=dict(i=7e-7, c=1.75e-7, o=2.8e-6), batch=dict(i=2e-7, o=8e-7)),
    "gpt-4.1-nano": dict(i=1e-7, c=2.5e-8, o=4e-7, priority=dict(i=2e-7, c=5e-8, o=8e-7), batch=dict(i=5e-8, o=2e-7)),
    "o1": dict(i=1.5e-5, c=7.5e-6, o=6e-5, batch=dict(i=7.5e-6, o=3e-5)),
    "o3": dict(i=2e-6, c=5e-7, o=8e-6, flex=dict(i=1e-6, c=2.5e-7, o=4e-6), priority=dict(i=3.5e-6, c=8.75e-7, o=1.4e-5), batch=dict(i=1e-6, o=4e-6)),
    "o3-2025-04-16": dict(i=2e-6, c=5e-7, o=8e-6, flex=dict(i=1e-6, c=2.5e-7, o=4e-6), priority=dict(i=3.5e-6, c=8.75e-7, o=1.4e-5), batch=dict(i=1e-6, o=4e-6)),
    "o3-mini": dict(i=1.1e-6, c=5.5e-7, o=4.4e-6, batch=dict(i=5.5e-7, o=2.2e-6)),
    "o3-pro": dict(i=2e-5, o=8e-5, batch=dict(i=1e-5, o=4e-5)),
    "o4-mini": dict(i=1.1e-6, c=2.75e-7, o=4.4e-6, flex=dict(i=5.5e-7, c=1.38e-7, o=2.2e-6), priority=dict(i=2e-6, c=5e-7, o=8e-6), batch=dict(i=5.5e-7, o=2.2e-6)),
    "gpt-5": dict(i=1.25e-6, c=1.25e-7, o=1e-5, flex=dict(i=6.25e-7, c=6.25e-8, o=5e-6), priority=dict(i=2.5e-6, c=2.5e-7, o=2e-5), batch=dict(i=6.25e-7, c=6.25e-8, o=5e-6)),
    "gpt-5-2025-08-07": dict(i=1.25e-6, c=1.25e-7, o=1e-5, flex=dict(i=6.25e-7, c=6.25e-8, o=5e-6), priority=dict(i=2.5e-6, c=2.5e-7, o=2e-5), batch=dict(i=6.25e-7, c=6.25e-8, o=5e-6)),
    "gpt-5-mini": dict(i=2.5e-7, c=2.5e-8, o=2e-6, flex=dict(i=1.25e-7, c=1.25e-8, o=1e-6), priority=dict(i=4.5e-7, c=4.5e-8, o=3.6e-6), batch=dict(i=1.25e-7, c=1.25e-8, o=1e-6)),
    "gpt-5-nano": dict(i=5e-8, c=5e-9, o=4e-7, flex=dict(i=2.5e-8, c=2.5e-9, o=2e-7), batch=dict(i=2.5e-8, c=2.5e-9, o=2e-7)),
    "gpt-5.1": dict(i=1.25e-6, c=1.25e-7, o=1e-5, flex=dict(i=6.25e-7, c=6.25e-8, o=5e-6), priority=dict(i=2.5e-6, c=2.5e-7, o=2e-5), batch=dict(i=6.25e-7, c=6.25e-8, o=5e-6)),
    "gpt-5.2": dict(i=1.75e-6, c=1.75e-7, o=1.4e-5, flex=dict(i=8.75e-7, c=8.75e-8, o=7e-6), priority=dict(i=3.5e-6, c=3.5e-7, o=2.8e-5), batch=dict(i=8.75e-7, c=8.75e-8, o=7e-6)),
    "gpt-5.4": dict(
        i=2.5e-6, c=2.5e-7, o=1.5e-5,
        flex=dict(i=1.25e-6, c=1.3e-7, o=7.5e-6), priority=dict(i=5e-6, c=5e-7, o=3e-5), batch=dict(i=1.25e-6, c=1.3e-7, o=7.5e-6),
        above={272000: dict(i=5e-6, c=5e-7, o=2.25e-5,
                            flex=dict(i=2.5e-6, c=2.5e-7, o=1.125e-5),
                            batch=dict(i=2.5e-6, c=2.5e-7, o=1.125e-5))},
    ),
    "gpt-3.5-turbo-0125": dict(i=5e-7, o=1.5e-6, batch=dict(i=2.5e-7, o=7.5e-7)),
    "gpt-4-0613": dict(i=3e-5, o=6e-5, batch=dict(i=1.5e-5, o=3e-5)),
    "gpt-4o-audio-preview-2025-06-03": dict(i=2.5e-6, o=1e-5),
    "azure/gpt-4o": dict(i=2.5e-6, c=1.25e-6, o=1e-5, batch=dict(i=1.25e-6, o=5e-6)),
    "azure/gpt-4o-2024-08-06": dict(i=2.5e-6, c=1.25e-6, o=1e-5, batch=dict(i=1.25e-6, o=5e-6)),
    "ft:gpt-4o-mini-2024-07-18": dict(i=3e-7, c=1.5e-7, o=1.2e-6, batch=dict(i=1.5e-7, c=7.5e-8, o=6e-7)),
    "ft:gpt-4.1-2025-04-14": dict(i=3e-6, c=7.5e-7, o=1.2e-5, batch=dict(i=1.5e-6, c=5e-7, o=6e-6)),
    "ft:gpt-4.1-nano-2025-04-14": dict(i=2e-7, c=5e-8, o=8e-7, batch=dict(i=1e-7, c=2.5e-8, o=4e-7)),
    "ft:o4-mini-2025-04-16": dict(i=4e-6, c=1e-6, o=1.6e-5, batch=dict(i=2e-6, c=5e-7, o=8e-6)),
    "claude-sonnet-4-5": dict(i=3e-6, c=3e-7, w=3.75e-6, o=1.5e-5, batch=dict(i=1.5e-6, c=1.5e-7, w=1.875e-6, o=7.5e-6)),
    "claude-sonnet-4-5-20250929": dict(i=3e-6, c=3e-7, w=3.75e-6, o=1.5e-5, batch=dict(i=1.5e-6, c=1.5e-7, w=1.875e-6, o=7.5e-6)),
    "claude-haiku-4-5": dict(i=1e-6, c=1e-7, w=1.25e-6, o=5e-6, batch=dict(i=5e-7, c=5e-8, w=6.25e-7, o=2.5e-6)),
    "gemini-2.5-pro": dict(
        i=1.25e-6, c=1.25e-7, o=1e-5,
        flex=dict(i=6.25e-7, c=1.25e-7, o=5e-6), priority=dict(i=2.25e-6, c=2.25e-7, o=1.8e-5), batch=dict(i=6.25e-7, o=5e-6),
        above={200000: dict(i=2.5e-6, c=2.5e-7, w=2.5e-7, o=1.5e-5,
                            priority=dict(i=4.5e-6, c=4.5e-7, o=2.7e-5),
                            flex=dict(i=1.25e-6, o=7.5e-6),
                            batch=dict(i=1.25e-6, o=7.5e-6))},
    ),
    "gemini/gemini-2.5-pro": dict(
        i=1.25e-6, c=1.25e-7, o=1e-5,
        above={200000: dict(i=2.5e-6, c=2.5e-7, o=1.5e-5)},
    ),
    "gemini-2.5-flash": dict(i=3e-7, c=3e-8, o=2.5e-6, r=2.5e-6, flex=dict(i=1.5e-7, c=3e-8, o=1.25e-6), priority=dict(i=5.4e-7, c=5.4e-8, o=4.5e-6)),
    "gemini/gemini-2.5-flash": dict(i=3e-7, c=3e-8, o=2.5e-6, r=2.5e-6),
    "deepseek/deepseek-chat": dict(i=2.8e-7, c=2.8e-8, w=0.0, o=4.2e-7),
    "mistral/mistral-large-latest": dict(i=5e-7, c=5e-8, o=1.5e-6),
    "xai/grok-4.20-0309-reasoning": dict(
        i=1.25e-6, c=2e-7, o=2.5e-6, batch=dict(i=1e-6, c=1.6e-7, o=2e-6),
        above={200000: dict(i=2.5e-6, c=4e-7, o=5e-6, batch=dict(i=2e-6, c=3.2e-7, o=4e-6))},
    ),
    "text-embedding-3-small": dict(i=2e-8, o=0.0, batch=dict(i=1e-8, o=0.0)),
    "text-embedding-3-large": dict(i=1.3e-7, o=0.0, batch=dict(i=6.5e-8, o=0.0)),
    "text-embedding-ada-002": dict(i=1e-7, o=0.0),
    # Image models priced by token: every output token at output_cost_per_image_token.
    "gpt-image-1": dict(i=5e-6, c=1.25e-6, o=4e-5),
    "gpt-image-1-mini": dict(i=2e-6, c=2e-7, o=8e-6),
}

# Per image (input_cost_per_image) or per pixel (input_cost_per_pixel).
PER_IMAGE = {
    "low/1024-x-1024/gpt-image-1": 0.011,
    "medium/1024-x-1536/gpt-image-1": 0.063,
    "high/1024-x-1024/gpt-image-1": 0.167,
    "1024-x-1024/gpt-image-1.5": 0.009,
    "high/1536-x-1024/gpt-image-1.5": 0.2,
}
PER_PIXEL = {
    "azure/hd/1024-x-1024/dall-e-3": 8.39233e-08,
    "azure/standard/1792-x-1024/dall-e-3": 4.79562e-08,
    "azure/standard/1024-x-1024/dall-e-3": 4.19617e-08,
    "azure/standard/1024-x-1024/dall-e-2": 0.0,
}

TIER_NAMES = {"flex": "flex", "priority": "priority", "batch": "batch"}


def rates(key, tier, prompt):
    """The prices of `key` for a call of `prompt` input tokens at `tier`."""
    p = P[key]
    t = p.get(tier, None) if tier in TIER_NAMES else None
    used_tier = tier if t else None
    t = t or {}
    r = {k: t.get(k, p.get(k)) for k in ("i", "c", "w", "o")}
    inclusive = key.startswith("xai/")
    for threshold, above in sorted(p.get("above", {}).items()):
        if prompt > threshold or (inclusive and prompt == threshold):
            at = above.get(used_tier, {}) if used_tier else {}
            for k in ("i", "c", "w", "o"):
                if used_tier == "batch" and k in t and k not in at:
                    continue  # a batch price with no threshold price of its own stays
                v = at.get(k, above.get(k))
                if v is not None:
                    r[k] = v
    r["c"] = r["c"] if r["c"] is not None else r["i"]
    r["w"] = r["w"] if r["w"] is not None else r["i"]
    reasoning = t.get("r") if used_tier else None
    if reasoning is None and (used_tier is None or "o" not in t):
        reasoning = p.get("r")
    r["r"] = reasoning if reasoning is not None else r["o"]
    return r, used_tier


def token_cost(key, prompt, completion, cached=0, write=0, reasoning=0, tier=None):
    r, used = rates(key, tier, prompt)
    cached = min(cached, prompt)
    write = min(write, prompt - cached)
    uncached = prompt - cached - write
    reasoning = min(reasoning, completion)
    e = {"status": "priced", "model": key}
    e["input"] = uncached * r["i"]
    if cached:
        e["cached_input"] = cached * r["c"]
    if write:
        e["cache_write"] = write * r["w"]
    e["reasoning_part"] = reasoning * r["r"]
    e["output"] = (completion - reasoning) * r["o"] + e["reasoning_part"]
    if reasoning:
        e["reasoning"] = e["reasoning_part"]
    del e["reasoning_part"]
    e["total"] = e["input"] + e.get("cached_input", 0.0) + e.get("cache_write", 0.0) + e["output"]
    if used:
        e["tier"] = used
    return e


def wire(shape, prompt, completion, cached=0, write=0, reasoning=0):
    """The usage object as the API sends it."""
    if shape == "chat":
        u = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if cached or write:
            u["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
        if write:
            u["prompt_tokens_details"]["cache_creation_tokens"] = write
        if reasoning:
            u["completion_tokens_details"] = {"reasoning_tokens": reasoning, "audio_tokens": 0}
        return u
    if shape == "chat_litellm":  # LiteLLM proxy / Anthropic-compatible: top-level cache fields
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached}, "cache_creation_input_tokens": write,
                "cache_read_input_tokens": cached}
    if shape == "chat_openrouter":
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write}}
    if shape == "responses":
        return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens_details": {"reasoning_tokens": reasoning}}
    if shape == "messages":  # Anthropic's own: input_tokens leaves out cache reads and writes
        return {"input_tokens": prompt - cached - write, "output_tokens": completion,
                "cache_read_input_tokens": cached, "cache_creation_input_tokens": write}
    if shape == "embeddings":
        return {"prompt_tokens": prompt, "total_tokens": prompt}
    if shape == "images":
        return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion,
                "input_tokens_details": {"text_tokens": prompt, "image_tokens": 0}}
    raise ValueError(shape)


OPERATION_OF_SHAPE = {"chat": "chat", "chat_litellm": "chat", "chat_openrouter": "chat", "responses": "responses",
                      "messages": "messages", "embeddings": "embeddings", "images": "images"}

cases = []


def case(model, key, prompt, completion, why, cached=0, write=0, reasoning=0, tier=None, shape="chat",
         response_model=None, op=None):
    c = {"model": model, "operation": op or OPERATION_OF_SHAPE[shape],
         "usage": wire(shape, prompt, completion, cached, write, reasoning),
         "expected": token_cost(key, prompt, completion, cached, write, reasoning, tier), "why": why}
    if response_model:
        c["response_model"] = response_model
    if tier:
        c["service_tier"] = tier
    cases.append(c)


def other(model, usage, expected, why, op="chat", **extra):
    c = {"model": model, "operation": op, "usage": usage, "expected": expected, "why": why}
    c.update(extra)
    cases.append(c)


# A. Every chat model, five usage shapes.
CHAT_MODELS = ["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4.1", "gpt-4.1-2025-04-14",
               "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-2025-04-16", "o3-mini", "o3-pro", "o4-mini", "gpt-5",
               "gpt-5-2025-08-07", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.2", "gpt-5.4", "gpt-3.5-turbo-0125",
               "gpt-4-0613", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-pro", "gemini-2.5-flash",
               "deepseek/deepseek-chat", "mistral/mistral-large-latest", "xai/grok-4.20-0309-reasoning"]
for m in CHAT_MODELS:
    case(m, m, 1200, 300, "plain chat usage: input and output at the base prices")
    case(m, m, 5000, 800, "cached tokens are part of prompt_tokens: priced at the cache-read price, the rest at input", cached=3072)
    case(m, m, 2000, 1500, "reasoning tokens are part of completion_tokens: their share, not added again", reasoning=1024, shape="responses")
    case(m, m, 0, 0, "zero tokens: priced, zero")
    case(m, m, 70_000, 4_000, "Responses API shape with cache and reasoning", cached=60_000, reasoning=2_500, shape="responses")

# B. The served tier (the response's service_tier).
for m in ["gpt-4o", "gpt-4.1", "o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.2", "gemini-2.5-pro", "o1"]:
    for tier in ["flex", "priority", "batch", "default", "auto", "scale"]:
        case(m, m, 10_000, 2_000, f"service_tier {tier!r} served: that tier's prices where the model has them, else standard",
             cached=4_000, reasoning=500, tier=tier)

# C. Model names in every form.
names = [
    ("openai/gpt-4o", "gpt-4o", "provider prefix removed"),
    ("OpenAI/GPT-4o", "gpt-4o", "provider prefix removed, case ignored"),
    ("openrouter/openai/gpt-4.1", "gpt-4.1", "two provider prefixes removed"),
    ("azure/gpt-4o", "azure/gpt-4o", "LiteLLM's own prefixed key is exact and wins"),
    ("azure/gpt-4o-2024-08-06", "azure/gpt-4o-2024-08-06", "LiteLLM's own prefixed dated key"),
    ("gpt-4.1-2031-02-03", "gpt-4.1", "unknown date -YYYY-MM-DD removed"),
    ("gpt-4.1-20310203", "gpt-4.1", "unknown date -YYYYMMDD removed"),
    ("gpt-4.1@20310203", "gpt-4.1", "unknown date @YYYYMMDD removed"),
    ("o3-0203", "o3", "unknown date -MMDD removed"),
    ("gpt-5-2031-01-01", "gpt-5", "future gpt-5 snapshot priced as gpt-5"),
    ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", "Anthropic via its provider prefix, dated key exact"),
    ("anthropic/claude-haiku-4-5@20251001", "claude-haiku-4-5", "Vertex-style @date removed"),
    ("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro", "Gemini API key exact (prefixed in LiteLLM)"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash", "Gemini's models/ prefix removed"),
    ("gemini/gemini-2.5-flash", "gemini/gemini-2.5-flash", "Gemini API flash key exact"),
    ("ft:gpt-4o-mini-2024-07-18:acme:support:9x8Y7", "ft:gpt-4o-mini-2024-07-18", "fine-tune: LiteLLM's ft: price"),
    ("ft:gpt-4o-mini:acme::9x8Y7", "ft:gpt-4o-mini-2024-07-18", "fine-tune of an undated base: newest dated ft: price"),
    ("ft:gpt-4.1-2025-04-14:acme:legal:AbC", "ft:gpt-4.1-2025-04-14", "fine-tune of gpt-4.1"),
    ("ft:o4-mini-2025-04-16:acme::r1", "ft:o4-mini-2025-04-16", "fine-tune of o4-mini"),
    ("ft:gpt-5-mini:acme::z1", "gpt-5-mini", "fine-tune with no ft: price: priced as its base"),
    ("ft:gpt-5-mini-2031-01-01:acme::n1", "gpt-5-mini", "fine-tune with no ft: price, dated base: the base without its date"),
    ("ft:gpt-4.1-nano-2031-01-01:acme::n1", "ft:gpt-4.1-nano-2025-04-14", "fine-tune of an unknown snapshot: newest dated ft: price of its base"),
    ("openai/ft:gpt-4o-mini-2024-07-18:acme::x", "ft:gpt-4o-mini-2024-07-18", "provider prefix before ft:"),
    ("gpt-4o-audio-preview", "gpt-4o-audio-preview-2025-06-03", "undated name only in the table dated: newest dated entry"),
]
for model, key, why in names:
    case(model, key, 3000, 700, why, cached=1024)
# The response's model is more exact than the request's.
case("gpt-4o", "gpt-4o-mini-2024-07-18", 1000, 100, "the response's model wins over the request's", response_model="gpt-4o-mini-2024-07-18")
case("gpt-5", "gpt-5-2025-08-07", 1000, 100, "dated response model", response_model="gpt-5-2025-08-07", reasoning=64)
case("my-deployment", "gpt-4o-2024-08-06", 1000, 100, "Azure deployment name asked, real model answered", response_model="gpt-4o-2024-08-06")

# D. Long context.
case("gpt-5.4", "gpt-5.4", 272_000, 1_000, "exactly at the threshold: not above", cached=100_000)
case("gpt-5.4", "gpt-5.4", 272_001, 1_000, "one token above 272k: every token at the above-272k prices", cached=100_000)
case("gpt-5.4", "gpt-5.4", 400_000, 20_000, "above 272k, reasoning too", cached=300_000, reasoning=10_000, shape="responses")
case("gpt-5.4", "gpt-5.4", 400_000, 20_000, "above 272k at flex: the flex threshold prices", cached=300_000, tier="flex")
case("gpt-5.4", "gpt-5.4", 400_000, 20_000, "above 272k at priority: no priority threshold price, the standard one", cached=300_000, tier="priority")
case("gpt-5.4", "gpt-5.4", 400_000, 20_000, "above 272k at batch: the batch threshold prices", cached=300_000, tier="batch")
case("gemini-2.5-pro", "gemini-2.5-pro", 250_000, 5_000, "Gemini above 200k", cached=50_000)
case("gemini-2.5-pro", "gemini-2.5-pro", 200_000, 5_000, "Gemini at 200k: not above", cached=50_000)
case("gemini-2.5-pro", "gemini-2.5-pro", 250_000, 5_000, "Gemini above 200k at priority", cached=50_000, tier="priority")
case("gemini-2.5-pro", "gemini-2.5-pro", 250_000, 5_000, "Gemini above 200k at flex: flex threshold prices; cached at the standard threshold price (no flex one)", cached=50_000, tier="flex")
case("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro", 1_000_000, 65_000, "Gemini API, a million tokens in")
case("xai/grok-4.20-0309-reasoning", "xai/grok-4.20-0309-reasoning", 200_000, 1_000, "xAI bills the higher price from the threshold on (inclusive)", cached=10_000)
case("xai/grok-4.20-0309-reasoning", "xai/grok-4.20-0309-reasoning", 199_999, 1_000, "xAI one below the threshold", cached=10_000)
case("xai/grok-4.20-0309-reasoning", "xai/grok-4.20-0309-reasoning", 300_000, 1_000, "xAI above the threshold at batch", cached=10_000, tier="batch")

# E. Cache writes (Anthropic-style) in every wire shape.
for m in ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5-20250929"]:
    case(m, m, 12_000, 500, "Anthropic Messages shape: input_tokens + cache reads + writes, each at its price", cached=8_000, write=3_000, shape="messages")
    case(m, m, 12_000, 500, "LiteLLM-style top-level cache_creation_input_tokens (part of prompt_tokens)", cached=8_000, write=3_000, shape="chat_litellm")
    case(m, m, 12_000, 500, "OpenRouter-style prompt_tokens_details.cache_write_tokens", cached=8_000, write=3_000, shape="chat_openrouter")
    case(m, m, 12_000, 500, "prompt_tokens_details.cache_creation_tokens", cached=0, write=3_000, shape="chat")
    case(m, m, 12_000, 500, "batch prices for reads and writes too", cached=8_000, write=3_000, shape="messages", tier="batch")
case("deepseek/deepseek-chat", "deepseek/deepseek-chat", 10_000, 1_000, "an explicit 0 write price stays 0", cached=5_000, write=1_000, shape="chat_litellm")
case("gpt-4o", "gpt-4o", 10_000, 1_000, "no write price: writes at the input price", write=2_000, shape="chat_litellm")

# F. Embeddings: input only.
for m in ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]:
    for n in [8, 8191, 2_000_000]:
        case(m, m, n, 0, "embeddings: input tokens only", shape="embeddings")
    case("openai/" + m, m, 500, 0, "embeddings via a provider prefix", shape="embeddings")
case("text-embedding-3-small", "text-embedding-3-small", 1000, 0, "embeddings at batch", shape="embeddings", tier="batch")

# G. Images.
for m in ["gpt-image-1", "gpt-image-1-mini"]:
    case(m, m, 50, 4160, "gpt-image: text input tokens, output tokens at output_cost_per_image_token", shape="images")
    case(m, m, 20, 1056, "gpt-image, low quality", shape="images")
for key, each in PER_IMAGE.items():
    quality, size, model = key.split("/") if key.count("/") == 2 else (None, *key.split("/"))
    request = {"size": size.replace("-x-", "x")}
    if quality:
        request["quality"] = quality
    for n in [1, 3]:
        total = n * each
        other(model, None, {"status": "priced", "model": key, "total": total, "input": 0.0, "output": total},
              f"no usage in the response: {n} image(s) at input_cost_per_image of {key}", op="images", request=request, images=n)
for key, per_pixel in PER_PIXEL.items():
    provider, quality, size, model = key.split("/")
    w, h = (int(x) for x in size.split("-x-"))
    request = {"size": f"{w}x{h}", "quality": quality}
    total = 2 * w * h * per_pixel
    other(f"{provider}/{model}", None, {"status": "priced", "model": key, "total": total, "input": 0.0, "output": total},
          f"Azure image priced per pixel: 2 x {w}x{h} x {per_pixel}", op="images", request=request, images=2)
other("azure/dall-e-3", None,
      {"status": "priced", "model": "azure/standard/1024-x-1024/dall-e-3", "total": 1024 * 1024 * 4.19617e-08, "input": 0.0,
       "output": 1024 * 1024 * 4.19617e-08},
      "no size asked: the API's default 1024x1024", op="images", request={"quality": "standard"}, images=1)
other("dall-e-3", None, {"status": "unpriced"}, "dall-e-3 on OpenAI is not in this LiteLLM table (only azure/ and aiml/)",
      op="images", request={"size": "1024x1024", "quality": "standard"}, images=1)
other("dall-e-2", None, {"status": "unpriced"}, "dall-e-2 on OpenAI is not in this LiteLLM table", op="images",
      request={"size": "512x512"}, images=4)

# H. Unknown, missing, odd.
for m in ["my-own-model", "llama-3-70b-local", "gpt-7", "ft:my-base:acme::1", "acme/unknown-2024-01-01"]:
    other(m, {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}, {"status": "unpriced"},
          "model not in the table: no cost at all, never a silent 0")
for m in ["gpt-4o", "o3", "claude-sonnet-4-5"]:
    other(m, None, {"status": "no_usage"}, "no usage in the response")
    other(m, {"total_tokens": 5}, {"status": "no_usage"}, "usage without input or output counts")
other("gpt-4o", {"prompt_tokens": -5, "completion_tokens": 10}, {"status": "invalid_usage"}, "negative count: not priced")
other("gpt-4o", {"prompt_tokens": 10.5, "completion_tokens": 10}, {"status": "invalid_usage"}, "fractional count: not priced")
case("gpt-4o", "gpt-4o", 10, 0, "a non-numeric output count is not extracted: input only")
cases[-1]["usage"]["completion_tokens"] = "many"
cases[-1]["expected"] = dict(token_cost("gpt-4o", 10, 0))
case("gpt-4o", "gpt-4o", 10**12, 10**11, "a trillion tokens: finite, exact products", cached=10**11, reasoning=10**10)
case("gpt-5", "gpt-5", 2**53, 2**40, "counts near 2^53", cached=2**52)
case("gpt-4o", "gpt-4o", 100, 10, "more cached than input: clamped to the input", cached=500)
cases[-1]["expected"] = token_cost("gpt-4o", 100, 10, cached=100)
case("gpt-4.1-mini", "gpt-4.1-mini", 1, 1, "one token each")
case("gpt-4o-mini", "gpt-4o-mini", 128_000, 16_384, "full context, no threshold prices for this model", cached=64_000)
case("o4-mini", "o4-mini", 1000, 1000, "all output was reasoning", reasoning=1000, shape="responses")
case("gpt-5-nano", "gpt-5-nano", 1000, 1000, "gpt-5-nano at priority: no priority price, standard", tier="priority")
case("gpt-4o", "gpt-4o", 1000, 200, "legacy completions endpoint", op="completions")

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "golden.jsonl"), "w") as f:
    for c in cases:
        f.write(json.dumps(c, sort_keys=False) + "\n")
print(f"{len(cases)} cases")
