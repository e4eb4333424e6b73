"""The OpenAI-compatible server probe (vLLM, TGI, llama.cpp's llama-server, transformers serve, ...).

Streaming (`stream: true`, server-sent events: `data: {json}` lines, ended by `data: [DONE]`, or
by a choice's `finish_reason` where the server sends no [DONE], as transformers serve 5.x does):
TTFT is the time from sending the request to the first chunk that carries text; inter-token
latency is the gap between later text chunks. Every repetition sends a unique prompt (prefix
caches would otherwise fake the prefill); repetition 0 is reported apart and the figure is the
median of the rest.

The server's limits are read before anything is measured, and every prompt is sized inside them:
- llama-server: GET /props (`default_generation_settings.n_ctx`: the context of one slot,
  `total_slots`: -np) and GET /slots (each slot's `n_ctx`). `-c 8192 -np 4` gives 2,048 tokens a
  slot; a longer request is HTTP 400 "exceeds the available context size".
- vLLM: `max_model_len` in every /v1/models entry; its Prometheus /metrics gives the KV-cache
  blocks it reserved.
- TGI: GET /info `max_input_tokens` (older: max_input_length) and `max_total_tokens`.
- transformers serve: /v1/models lists the pinned model (its id is the name it was started with)
  and no limit; /version, /props, /info and /metrics answer 404.
Prompt tokens per word are measured by the two warm-up requests (usage.prompt_tokens), so a
prompt's size in tokens is known before it is sent. When the server runs on this machine (a
loopback URL) the GPU memory its process holds is read with NVML (hardware.server_gpu_memory).
"""

from __future__ import annotations

import itertools
import re
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from advisor.domain import ProbeProgress, ProbeResult, ServerVram, TimingPoint
from advisor.errors import ProbeError
from advisor.probes.http import HttpClient, is_loopback, loads_line, number, object_list, one_line, text_field
from advisor.probes.ollama import fit_contexts, probe_start, step_reporter, unique_prompt

DEFAULT_CONTEXTS = (512, 2048)
MAX_TOKENS = 32
REPETITIONS = 3
DEFAULT_TIMEOUT = 300.0  # one streamed request, start to [DONE]
META_TIMEOUT = 30.0
WARMUP_WORDS = (16, 80)
MAX_TEXT_CHUNKS = 4 * MAX_TOKENS + 16  # more text chunks than this: the server ignores max_tokens


class Client(HttpClient):
    def __init__(self, base: str, timeout: float | None = DEFAULT_TIMEOUT, cancel: threading.Event | None = None):
        super().__init__(base, "OpenAI-compatible server", timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
                         hint="is the server running? check --url", cancel=cancel)
        self.base = re.sub(r"/v1$", "", self.base)


def _models(client: Client) -> list[dict]:
    where = f"{client.base}: GET /v1/models"
    out = []
    for i, m in enumerate(object_list(client, "/v1/models", "data", where,
                                      " (not an OpenAI-compatible server?)", timeout=META_TIMEOUT)):
        if m.get("id") is None:
            continue
        text_field(m["id"], f"data[{i}].id", where, optional=False, limit=500)
        out.append(m)
    return out


def identify(client: Client, model: str | None) -> tuple[str, dict[str, str]]:
    models = _models(client)
    if not models:
        raise ProbeError(f"{client.base}: /v1/models lists no model")
    ids = [m["id"] for m in models]
    if model is not None and model not in ids:
        raise ProbeError(f"model {one_line(model, 80)!r} is not served at {client.base} "
                         f"(it serves: {one_line(', '.join(ids[:8]), 200)})")
    versions = {}
    try:
        v = client.json("GET", "/version", timeout=META_TIMEOUT)
        if isinstance(v, dict) and isinstance(v.get("version"), str):
            versions["server"] = one_line(v["version"], 40)
    except ProbeError as e:
        if "cancelled" in str(e):
            raise
    return (model or ids[0]), versions


def _optional_json(client: Client, path: str):
    """A GET that only some servers have: None when it is missing or not JSON."""
    try:
        return client.json("GET", path, timeout=META_TIMEOUT)
    except ProbeError as e:
        if "cancelled" in str(e) or "cannot reach" in str(e):
            raise
        return None


def server_limits(client: Client, entry: dict) -> dict:
    """What the server lets one request hold, from /v1/models, llama-server's /props and /slots.

    Returns {"max_model_len", "n_ctx_train", "slots", "n_ctx_per_slot", "limit", "why"}: `limit` is
    the most tokens (prompt + output) one request may have, `why` says which figure set it.
    """
    where = f"{client.base}: GET /v1/models"
    out: dict = {"max_model_len": number(entry.get("max_model_len"), "max_model_len", where, lo=1, hi=1e9,
                                         integer=True, optional=True)}
    meta = entry.get("meta")
    if isinstance(meta, dict):  # llama-server
        out["n_ctx_train"] = number(meta.get("n_ctx_train"), "meta.n_ctx_train", where, lo=1, hi=1e9,
                                    integer=True, optional=True)
    props = _optional_json(client, "/props")
    if isinstance(props, dict) and ("default_generation_settings" in props or "total_slots" in props):
        w = f"{client.base}: GET /props"
        dgs = props.get("default_generation_settings")
        if dgs is not None and not isinstance(dgs, dict):
            raise ProbeError(f"{w}: default_generation_settings is not an object")
        out["slots"] = number(props.get("total_slots"), "total_slots", w, lo=1, hi=65_536, integer=True,
                              optional=True)
        out["props_n_ctx"] = number((dgs or {}).get("n_ctx"), "default_generation_settings.n_ctx", w, lo=1,
                                    hi=1e9, integer=True, optional=True)
        if isinstance(props.get("build_info"), str):
            out["build_info"] = one_line(props["build_info"], 60)
        slots = _optional_json(client, "/slots")
        if isinstance(slots, list):
            w = f"{client.base}: GET /slots"
            if len(slots) > 65_536:
                raise ProbeError(f"{w}: lists {len(slots):,} slots")
            per = []
            for i, s in enumerate(slots):
                if not isinstance(s, dict):
                    raise ProbeError(f"{w}: slot {i} is not an object")
                per.append(number(s.get("n_ctx"), f"[{i}].n_ctx", w, lo=1, hi=1e9, integer=True))
            if per:
                out["n_ctx_per_slot"] = per
                out["slots"] = out.get("slots") or len(per)
    else:
        info = _optional_json(client, "/info")  # TGI: input and total token limits per request
        if isinstance(info, dict) and ("max_total_tokens" in info or "max_input_tokens" in info):
            w = f"{client.base}: GET /info"
            out["max_total_tokens"] = number(info.get("max_total_tokens"), "max_total_tokens", w, lo=1, hi=1e9,
                                             integer=True, optional=True)
            out["max_input_tokens"] = number(info.get("max_input_tokens", info.get("max_input_length")),
                                             "max_input_tokens", w, lo=1, hi=1e9, integer=True, optional=True)
    candidates = []
    if out.get("n_ctx_per_slot"):
        per = out["n_ctx_per_slot"]
        n = len(per)
        candidates.append((min(per), f"the server's context per slot ({min(per):,} tokens in each of {n} "
                                     f"slot{'s' if n != 1 else ''}, GET /slots)"))
    elif out.get("props_n_ctx"):
        n = out.get("slots") or 1
        candidates.append((out["props_n_ctx"], f"the server's context per slot ({out['props_n_ctx']:,} tokens, "
                                               f"{n} slot{'s' if n != 1 else ''}, GET /props)"))
    if out.get("max_model_len"):
        candidates.append((out["max_model_len"], f"the server's max_model_len {out['max_model_len']:,}"))
    if out.get("max_total_tokens"):
        candidates.append((out["max_total_tokens"], f"the server's max_total_tokens {out['max_total_tokens']:,}"))
    if out.get("max_input_tokens"):
        candidates.append((out["max_input_tokens"] + MAX_TOKENS,
                           f"the server's max_input_tokens {out['max_input_tokens']:,}"))
    if candidates:
        out["limit"], out["why"] = min(candidates, key=lambda c: c[0])
    return {k: v for k, v in out.items() if v is not None}


# llama-server: "request (2053 tokens) exceeds the available context size (2048 tokens), try increasing it"
# vLLM: "This model's maximum context length is 1024 tokens. However, you requested 2080 tokens ..."
_TOO_LONG = (re.compile(r"\((\d+) tokens\) exceeds the available context size \((\d+) tokens\)"),
             re.compile(r"maximum context length is (\d+) tokens\. However, you requested (\d+) tokens"))


def _too_long(message: str) -> tuple[int, int] | None:
    """(tokens sent, tokens allowed) from a server's 'prompt too long' message."""
    m = _TOO_LONG[0].search(message)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = _TOO_LONG[1].search(message)
    if m:
        return int(m.group(2)), int(m.group(1))
    return None


def parse_metrics(text: str) -> dict:
    """The vLLM figures worth keeping from Prometheus text: KV blocks reserved and their size."""
    out: dict = {}
    for line in text.splitlines():
        if line.startswith("vllm:cache_config_info{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line[:4000]))
            for key in ("num_gpu_blocks", "block_size", "cache_dtype", "gpu_memory_utilization"):
                if key in labels:
                    out[key] = one_line(labels[key], 40)
        else:
            m = re.match(r"^(vllm:(?:gpu_cache_usage_perc|kv_cache_usage_perc|num_requests_running|"
                         r"num_requests_waiting))(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", line[:4000])
            if m:
                try:
                    v = float(m.group(2))
                except ValueError:
                    continue
                if v == v and abs(v) < 1e15:
                    out[m.group(1).split(":", 1)[1]] = v
    try:
        blocks, size = int(out["num_gpu_blocks"]), int(out["block_size"])
        if 0 < blocks < 1e9 and 0 < size < 1e6:
            out["kv_capacity_tokens"] = blocks * size
    except (KeyError, ValueError):
        pass
    return out


def _metrics(client: Client) -> dict | None:
    try:
        text = client.text("GET", "/metrics", timeout=META_TIMEOUT)
    except ProbeError as e:
        if "cancelled" in str(e):
            raise
        return None
    if "vllm:" not in text:
        return None
    return parse_metrics(text)


def stream_once(client: Client, name: str, prompt: str, endpoint: str) -> dict:
    """One streamed request: TTFT, gaps between text chunks, tokens, whether [DONE] came."""
    body: dict[str, Any]
    if endpoint == "completions":
        path, body = "/v1/completions", {"model": name, "prompt": prompt}
    else:
        path, body = "/v1/chat/completions", {"model": name, "messages": [{"role": "user", "content": prompt}]}
    body.update({"max_tokens": MAX_TOKENS, "temperature": 0, "stream": True,
                 "stream_options": {"include_usage": True}})
    where = f"{client.base}{path}"
    t0 = time.perf_counter()
    arrivals: list[float] = []
    usage = None
    finished = False  # [DONE] came, or (transformers serve, which sends no [DONE]) a choice's finish_reason
    with client.stream("POST", path, json=body) as s:
        for line in s.lines():
            line = line.strip()
            if not line or line.startswith(":") or not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                finished = True
                break
            data = loads_line(payload, where)
            if data.get("error"):
                err = data["error"]
                raise ProbeError(f"{where}: the stream reported an error: "
                                 f"{one_line(err.get('message') if isinstance(err, dict) else err, 160)}")
            u = data.get("usage")
            if u is not None:
                if not isinstance(u, dict):
                    raise ProbeError(f"{where}: usage is a {type(u).__name__}, not an object")
                usage = {k: number(u.get(k), f"usage.{k}", where, hi=1e8, integer=True, optional=True)
                         for k in ("prompt_tokens", "completion_tokens")}
            choices = data.get("choices")
            if choices is None:
                choices = []
            if not isinstance(choices, list):
                raise ProbeError(f"{where}: choices is a {type(choices).__name__}, not a list")
            for ch in choices:
                if not isinstance(ch, dict):
                    raise ProbeError(f"{where}: a choice is a {type(ch).__name__}, not an object")
                if endpoint == "completions":
                    text = ch.get("text")
                else:
                    delta = ch.get("delta")
                    if delta is not None and not isinstance(delta, dict):
                        raise ProbeError(f"{where}: choices[].delta is a {type(delta).__name__}, not an object")
                    text = (delta or {}).get("content")
                if text is not None and not isinstance(text, str):
                    raise ProbeError(f"{where}: the streamed text is a {type(text).__name__}, not a string")
                if text:
                    arrivals.append(time.perf_counter())
                if isinstance(ch.get("finish_reason"), str) and ch["finish_reason"]:
                    finished = True
            if len(arrivals) > MAX_TEXT_CHUNKS:
                raise ProbeError(f"{where}: streamed more than {MAX_TEXT_CHUNKS} text chunks for max_tokens="
                                 f"{MAX_TOKENS} (the server ignores max_tokens)")
    if not arrivals:
        raise ProbeError(f"{where}: the stream ended without any text"
                         + ("" if finished else " (connection closed early: truncated stream)"))
    gaps = [(b - a) * 1e3 for a, b in itertools.pairwise(arrivals)]
    return {"ttft_ms": (arrivals[0] - t0) * 1e3, "gaps_ms": gaps, "chunks": len(arrivals),
            "prompt_tokens": (usage or {}).get("prompt_tokens"),
            "completion_tokens": (usage or {}).get("completion_tokens"),
            "decode_s": arrivals[-1] - arrivals[0], "done": finished}


def probe(client: Client, name: str, *, contexts: list[int] | None = None,
          progress: Callable[[ProbeProgress], None] | None = None, cancel: threading.Event | None = None,
          gpu: str = "", versions: dict[str, str] | None = None, seed: int | None = None) -> ProbeResult:
    t_start, rng, wanted = probe_start(contexts or DEFAULT_CONTEXTS, seed)
    entry = next((m for m in _models(client) if m["id"] == name), {})
    limits = server_limits(client, entry)
    warnings: list[str] = []
    report = step_reporter("openai", 2 + len(wanted), progress, cancel)

    if limits.get("limit") and limits["limit"] < MAX_TOKENS + WARMUP_WORDS[1] + 64:
        raise ProbeError(f"{client.base}: {limits['why']} is too small to measure a prompt "
                         f"(at least {MAX_TOKENS + WARMUP_WORDS[1] + 64} tokens needed)")
    # Warm-up, which endpoint works, and tokens per word (two sizes: slope and the template's overhead).
    endpoint = "completions"
    try:
        first = stream_once(client, name, unique_prompt(WARMUP_WORDS[0], rng), endpoint)
    except ProbeError as e:
        if "HTTP 404" not in str(e) and "HTTP 405" not in str(e):
            raise
        endpoint = "chat"
        first = stream_once(client, name, unique_prompt(WARMUP_WORDS[0], rng), endpoint)
    second = stream_once(client, name, unique_prompt(WARMUP_WORDS[1], rng), endpoint)
    per_word, overhead = 1.1, 16.0  # without usage: assume a little more than a token a word
    p1, p2 = first["prompt_tokens"], second["prompt_tokens"]
    if p1 and p2 and p2 > p1:
        per_word = max((p2 - p1) / (WARMUP_WORDS[1] - WARMUP_WORDS[0]), 0.25)
        overhead = max(p1 - per_word * WARMUP_WORDS[0], 0.0)
    report(f"{name}: streaming /v1/{'completions' if endpoint == 'completions' else 'chat/completions'}"
           + (f", {limits['why']}" if limits.get("why") else ""))

    sizes = list(wanted)
    if limits.get("limit"):
        margin = 8 + 0.01 * limits["limit"]
        most = int((limits["limit"] - MAX_TOKENS - margin - overhead) / per_word)
        sizes, skipped = fit_contexts(wanted, most, limits["why"])
        warnings += skipped
        if not sizes:
            raise ProbeError(f"{client.base}: no prompt fits {limits['why']}")

    timings: list[TimingPoint] = []
    gaps: list[float] = []
    decode: list[float] = []
    raw = []
    for n in sizes:
        runs: list[dict] = []
        words = n
        while len(runs) < 1 + REPETITIONS:
            try:
                runs.append(stream_once(client, name, unique_prompt(words, rng), endpoint))
            except ProbeError as e:
                over = _too_long(str(e))
                if over is None or runs or words != n:
                    raise
                sent, allowed = over  # the server counts tokens differently: size down once, and say so
                words = int(words * (allowed - MAX_TOKENS - 8) / max(sent, 1))
                if words < 16:
                    raise
                warnings.append(f"{n:,} tokens: the server allows {allowed:,} tokens a request and counted "
                                f"{sent:,}; measured at {words:,} words instead")
        raw.append({"context": n, "words": words,
                    "runs": [{k: v for k, v in r.items() if k != "gaps_ms"} for r in runs]})
        if any(not r["done"] for r in runs):
            warnings.append(f"at {n:,} tokens a stream ended without [DONE] (truncated)")
        rest = runs[1:]
        counted = [r["prompt_tokens"] for r in runs if r["prompt_tokens"]]
        timings.append(TimingPoint(context_tokens=int(statistics.median(counted)) if counted else words,
                                   ttft_ms=round(statistics.median(r["ttft_ms"] for r in rest), 3),
                                   repetitions=len(rest), rep0_ms=round(runs[0]["ttft_ms"], 3)))
        for r in rest:
            gaps += r["gaps_ms"]
            tokens = (r["completion_tokens"] or r["chunks"]) - 1
            if r["decode_s"] > 0 and tokens > 0:
                decode.append(tokens / r["decode_s"])
        report(f"{n:,} tokens: TTFT {timings[-1].ttft_ms:.1f} ms (rep 0: {timings[-1].rep0_ms:.1f} ms)")

    metrics = _metrics(client)
    server = server_kind(entry, limits, metrics)
    vram = _server_vram(client)
    report("server GPU memory: " + (f"{vram['mib']:,.0f} MiB ({vram['method']})" if vram.get("mib") is not None
                                    else f"not measured ({vram['why']})"))
    return ProbeResult(
        backend="openai", model=name, gpu=gpu, versions=versions or {}, ttft=timings,
        decode_tok_s=round(statistics.median(decode), 2) if decode else None,
        max_model_len=limits.get("limit"), warnings=warnings,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - t_start, 3), server=server,
        server_vram=ServerVram.model_validate(vram), server_limits=limits,
        inter_token_ms_median=round(statistics.median(gaps), 3) if gaps else None,
        extra={"url": client.base, "endpoint": endpoint, "max_tokens": MAX_TOKENS,
               "prompt_tokens_per_word": round(per_word, 3),
               "prompt_overhead_tokens": round(overhead, 1),
               "inter_token_ms_p95": round(sorted(gaps)[int(0.95 * (len(gaps) - 1))], 3) if gaps else None,
               "vllm_metrics": metrics, "repetitions": raw,
               "method": "client-side streaming TTFT (request sent -> first text chunk); unique prompt per rep; "
                         "prompts sized inside the server's limits (/v1/models, /props, /slots)"})


def server_kind(entry: dict, limits: dict, metrics: dict | None) -> str:
    """Which server answered, where its own endpoints say so (the engine of knowledge/backends.toml
    whose plans its figures describe); "" when none does. llama-server: /props and /slots; TGI: /info;
    vLLM: its Prometheus metrics; transformers serve: the non-OpenAI `status` object of its /v1/models."""
    if any(key in limits for key in ("props_n_ctx", "n_ctx_per_slot", "build_info")):
        return "llama-server"
    if "max_total_tokens" in limits or "max_input_tokens" in limits:
        return "tgi"
    if metrics:
        return "vllm"
    status = entry.get("status")
    if isinstance(status, dict) and status.get("value") in ("loaded", "unloaded"):
        return "transformers-serve"
    return ""


def _server_vram(client: Client) -> dict:
    """GPU memory the server's process holds, when it runs here (NVML); else why not."""
    from urllib.parse import urlsplit

    if not is_loopback(client.base):
        return {"mib": None, "why": f"the server is not on this machine ({urlsplit(client.base).hostname})"}
    from advisor.probes.hardware import server_gpu_memory

    parts = urlsplit(client.base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return server_gpu_memory(port)
