"""The OpenAI-compatible server probe (vLLM, TGI, llama.cpp server, ...).

Streaming (`stream: true`, server-sent events: `data: {json}` lines, ended by `data: [DONE]`):
TTFT is the time from sending the request to the first chunk that carries text; inter-token
latency is the gap between later text chunks. Every repetition sends a unique prompt (prefix
caches would otherwise fake the prefill); repetition 0 is reported apart and the figure is the
median of the rest. max_model_len comes from /v1/models (vLLM puts it in every model entry);
vLLM's Prometheus /metrics, when present, gives the KV-cache blocks it reserved.
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from advisor.domain import ProbeProgress, ProbeResult, TimingPoint
from advisor.errors import ProbeError
from advisor.probes.http import HttpClient, loads_line
from advisor.probes.ollama import unique_prompt

DEFAULT_CONTEXTS = (512, 2048)
MAX_TOKENS = 32
REPETITIONS = 3


class Client(HttpClient):
    def __init__(self, base: str, timeout: float = 120.0):
        super().__init__(base, "OpenAI-compatible server", timeout=timeout, hint="is the server running? check --url")
        self.base = re.sub(r"/v1$", "", self.base)


def _models(client: Client) -> list[dict]:
    data = client.json("GET", "/v1/models")
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ProbeError(f"{client.base}: GET /v1/models has no 'data' list (not an OpenAI-compatible server?)")
    return [m for m in models if isinstance(m, dict) and m.get("id")]


def identify(client: Client, model: str | None) -> tuple[str, dict[str, str]]:
    models = _models(client)
    if not models:
        raise ProbeError(f"{client.base}: /v1/models lists no model")
    ids = [m["id"] for m in models]
    if model is not None and model not in ids:
        raise ProbeError(f"model {model!r} is not served at {client.base} (it serves: {', '.join(ids[:8])})")
    versions = {}
    try:
        v = client.json("GET", "/version")
        if isinstance(v, dict) and isinstance(v.get("version"), str):
            versions["server"] = v["version"]
    except ProbeError:
        pass
    return (model or ids[0]), versions


def parse_metrics(text: str) -> dict:
    """The vLLM figures worth keeping from Prometheus text: KV blocks reserved and their size."""
    out: dict = {}
    for line in text.splitlines():
        if line.startswith("vllm:cache_config_info{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            for key in ("num_gpu_blocks", "block_size", "cache_dtype", "gpu_memory_utilization"):
                if key in labels:
                    out[key] = labels[key]
        else:
            m = re.match(r"^(vllm:(?:gpu_cache_usage_perc|kv_cache_usage_perc|num_requests_running|"
                         r"num_requests_waiting))(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", line)
            if m:
                out[m.group(1).split(":", 1)[1]] = float(m.group(2))
    try:
        out["kv_capacity_tokens"] = int(out["num_gpu_blocks"]) * int(out["block_size"])
    except (KeyError, ValueError):
        pass
    return out


def _metrics(client: Client) -> dict | None:
    try:
        r = client.request("GET", "/metrics")
    except ProbeError:
        return None
    if "vllm:" not in r.text:
        return None
    return parse_metrics(r.text)


def stream_once(client: Client, name: str, prompt: str, endpoint: str) -> dict:
    """One streamed request: TTFT, gaps between text chunks, tokens, whether [DONE] came."""
    if endpoint == "completions":
        path, body = "/v1/completions", {"model": name, "prompt": prompt}
    else:
        path, body = "/v1/chat/completions", {"model": name, "messages": [{"role": "user", "content": prompt}]}
    body.update({"max_tokens": MAX_TOKENS, "temperature": 0, "stream": True,
                 "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    arrivals: list[float] = []
    usage = None
    finished = False
    with client.stream("POST", path, json=body) as s:
        for line in s.lines():
            line = line.strip()
            if not line or line.startswith(":") or not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                finished = True
                break
            data = loads_line(payload, f"{client.base}{path}")
            if data.get("error"):
                err = data["error"]
                raise ProbeError(f"{client.base}{path}: the stream reported an error: "
                                 f"{(err.get('message') if isinstance(err, dict) else err)!s:.160}")
            if data.get("usage"):
                usage = data["usage"]
            for ch in data.get("choices") or []:
                text = ch.get("text") if endpoint == "completions" else (ch.get("delta") or {}).get("content")
                if text:
                    arrivals.append(time.perf_counter())
    if not arrivals:
        raise ProbeError(f"{client.base}{path}: the stream ended without any text"
                         + ("" if finished else " (connection closed early: truncated stream)"))
    gaps = [(b - a) * 1e3 for a, b in zip(arrivals, arrivals[1:])]
    return {"ttft_ms": (arrivals[0] - t0) * 1e3, "gaps_ms": gaps, "chunks": len(arrivals),
            "prompt_tokens": (usage or {}).get("prompt_tokens"), "completion_tokens": (usage or {}).get("completion_tokens"),
            "decode_s": arrivals[-1] - arrivals[0], "done": finished}


def probe(client: Client, name: str, *, contexts: list[int] | None = None,
          progress: Callable[[ProbeProgress], None] | None = None, cancel: threading.Event | None = None,
          gpu: str = "", versions: dict[str, str] | None = None, seed: int | None = None) -> ProbeResult:
    t_start = time.perf_counter()
    rng = random.Random(seed if seed is not None else time.time_ns())
    wanted = sorted(set(int(c) for c in (contexts or DEFAULT_CONTEXTS)))
    entry = next((m for m in _models(client) if m["id"] == name), {})
    max_len = entry.get("max_model_len")
    warnings: list[str] = []
    steps, done = 1 + len(wanted), 0

    def report(message: str) -> None:
        nonlocal done
        done += 1
        if cancel is not None and cancel.is_set():
            raise ProbeError("probe cancelled")
        if progress is not None:
            progress(ProbeProgress(step="openai", fraction=min(done / steps, 1.0), message=message))

    endpoint = "completions"
    try:
        stream_once(client, name, unique_prompt(16, rng), endpoint)  # warm-up, and which endpoint works
    except ProbeError as e:
        if "HTTP 404" not in str(e) and "HTTP 405" not in str(e):
            raise
        endpoint = "chat"
        stream_once(client, name, unique_prompt(16, rng), endpoint)
    report(f"{name}: streaming /v1/{'completions' if endpoint == 'completions' else 'chat/completions'}")

    timings: list[TimingPoint] = []
    gaps: list[float] = []
    decode: list[float] = []
    raw = []
    for n in wanted:
        if isinstance(max_len, int) and n + MAX_TOKENS > max_len:
            warnings.append(f"{n:,} tokens skipped: beyond the server's max_model_len {max_len:,}")
            continue
        runs = [stream_once(client, name, unique_prompt(n, rng), endpoint) for _ in range(1 + REPETITIONS)]
        raw.append({"context": n, "runs": [{k: v for k, v in r.items() if k != "gaps_ms"} for r in runs]})
        if any(not r["done"] for r in runs):
            warnings.append(f"at {n:,} tokens a stream ended without [DONE] (truncated)")
        rest = runs[1:]
        sent = [r["prompt_tokens"] for r in runs if r["prompt_tokens"]]
        timings.append(TimingPoint(context_tokens=int(statistics.median(sent)) if sent else n,
                                   ttft_ms=round(statistics.median(r["ttft_ms"] for r in rest), 3),
                                   repetitions=len(rest), rep0_ms=round(runs[0]["ttft_ms"], 3)))
        for r in rest:
            gaps += r["gaps_ms"]
            tokens = (r["completion_tokens"] or r["chunks"]) - 1
            if r["decode_s"] > 0 and tokens > 0:
                decode.append(tokens / r["decode_s"])
        report(f"{n:,} tokens: TTFT {timings[-1].ttft_ms:.1f} ms (rep 0: {timings[-1].rep0_ms:.1f} ms)")

    metrics = _metrics(client)
    return ProbeResult(
        backend="openai", model=name, gpu=gpu, versions=versions or {}, ttft=timings,
        decode_tok_s=round(statistics.median(decode), 2) if decode else None,
        max_model_len=max_len if isinstance(max_len, int) else None, warnings=warnings,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - t_start, 3),
        extra={"url": client.base, "endpoint": endpoint, "max_tokens": MAX_TOKENS,
               "inter_token_ms_median": round(statistics.median(gaps), 3) if gaps else None,
               "inter_token_ms_p95": round(sorted(gaps)[int(0.95 * (len(gaps) - 1))], 3) if gaps else None,
               "vllm_metrics": metrics, "repetitions": raw,
               "method": "client-side streaming TTFT (request sent -> first text chunk); unique prompt per rep"})
