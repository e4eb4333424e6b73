#!/usr/bin/env python3
"""Concurrent streams against an OpenAI-compatible server: TTFT, per-user and aggregate tok/s.

N users in a closed loop (each sends its next request when the last answer ends, `rounds`
requests each), every prompt unique from its first words (a nonce: no prefix-cache hits), streamed
from /v1/completions with `max_tokens` and greedy decoding. Per request: send time, first and last
text chunk, tokens (usage), prompt tokens. Per run: aggregate generated tok/s over the wall time,
the median per-user decode rate ((tokens - 1) / (last - first chunk)), TTFT p50/p95.

    python3 -m bench.calibrate.transformers_serve.load --url http://127.0.0.1:8000 --model ID --n 1,4,16 --words 400
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time

import httpx

WORDS = ("the river city morning light stone garden window market letter paper number table road music "
         "winter summer forest story water bridge school doctor planet silver engine travel signal island "
         "orange coffee museum season pocket rabbit candle theory mirror camera basket dinner harbor").split()


def prompt(words: int, rng: random.Random) -> str:
    return f"Note {rng.getrandbits(32):08x}: " + " ".join(rng.choice(WORDS) for _ in range(max(words - 4, 1)))


async def stream(client: httpx.AsyncClient, model: str, text: str, max_tokens: int) -> dict:
    body = {"model": model, "prompt": text, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = last = None
    chunks = 0
    usage: dict = {}
    async with client.stream("POST", "/v1/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:300]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            data = json.loads(payload)
            if data.get("usage"):
                usage = data["usage"]
            for ch in data.get("choices") or []:
                if ch.get("text"):
                    now = time.perf_counter()
                    first = first if first is not None else now
                    last = now
                    chunks += 1
    return {"t0": t0, "ttft_ms": (first - t0) * 1e3 if first else None,
            "decode_s": (last - first) if first else None, "chunks": chunks,
            "tokens": usage.get("completion_tokens"), "prompt_tokens": usage.get("prompt_tokens"),
            "end": last if last is not None else time.perf_counter()}


async def closed_loop(url: str, model: str, n: int, words: int, max_tokens: int, rounds: int,
                      seed: int, timeout: float = 600.0) -> dict:
    rng = random.Random(seed)
    prompts = [[prompt(words, rng) for _ in range(rounds)] for _ in range(n)]
    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        async def user(i: int) -> list[dict]:
            return [await stream(client, model, p, max_tokens) for p in prompts[i]]

        t0 = time.perf_counter()
        got = await asyncio.gather(*(user(i) for i in range(n)))
        wall = time.perf_counter() - t0
    reqs = [r for u in got for r in u]
    return summarize(n, reqs, wall, words, max_tokens, rounds)


def summarize(n: int, reqs: list[dict], wall: float, words: int, max_tokens: int, rounds: int) -> dict:
    tokens = sum(r["tokens"] or r["chunks"] for r in reqs)
    rates = [((r["tokens"] or r["chunks"]) - 1) / r["decode_s"] for r in reqs
             if r["decode_s"] and (r["tokens"] or r["chunks"]) > 1]
    ttfts = sorted(r["ttft_ms"] for r in reqs if r["ttft_ms"] is not None)
    itl = [1e3 / x for x in rates]
    return {"n": n, "rounds": rounds, "words": words, "max_tokens": max_tokens, "requests": len(reqs),
            "wall_s": round(wall, 3), "tokens": tokens, "aggregate_tok_s": round(tokens / wall, 2),
            "per_user_tok_s_median": round(statistics.median(rates), 2) if rates else None,
            "step_ms_median": round(statistics.median(itl), 3) if itl else None,
            "ttft_ms_median": round(statistics.median(ttfts), 1) if ttfts else None,
            "ttft_ms_p95": round(ttfts[min(len(ttfts) - 1, math.ceil(0.95 * len(ttfts)) - 1)], 1) if ttfts else None,
            "prompt_tokens_median": statistics.median(r["prompt_tokens"] for r in reqs if r["prompt_tokens"])
            if any(r["prompt_tokens"] for r in reqs) else None,
            "short_answers": sum(1 for r in reqs if (r["tokens"] or r["chunks"]) < max_tokens)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", default="1,4,16,64")
    ap.add_argument("--words", type=int, default=400)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for n in [int(x) for x in a.n.split(",")]:
        print(json.dumps(asyncio.run(closed_loop(a.url, a.model, n, a.words, a.max_tokens, a.rounds, a.seed + n))),
              flush=True)


if __name__ == "__main__":
    main()
