"""The Ollama probe (native API, httpx; default http://localhost:11434).

- /api/version proves it is Ollama; /api/tags lists the models; /api/show gives the architecture.
- KV cost per token: Ollama reserves the KV cache for num_ctx when it loads a model, so the prompt
  length shows no growth. Load twice with different num_ctx (an empty prompt only loads) and read
  /api/ps size_vram each time: (vram_hi - vram_lo) / (ctx_hi - ctx_lo).
- TTFT and decode come from Ollama's own prompt_eval_duration / eval_duration (nanoseconds). Every
  repetition sends a unique prompt that differs from its first token: identical prompts hit
  llama.cpp's prompt (KV prefix) cache and report a near-zero prefill. Repetition 0 (cold: first
  shape, graph allocation) is reported apart; the figure is the median of the others.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from advisor.domain import ProbeProgress, ProbeResult, TimingPoint
from advisor.errors import ProbeError
from advisor.probes.http import HttpClient

DEFAULT_URL = "http://localhost:11434"
DEFAULT_CONTEXTS = (512, 2048)
NUM_PREDICT = 32
REPETITIONS = 3  # after rep 0

WORDS = ("the river city morning light stone garden window market letter paper number table "
         "road music winter summer forest story water bridge school doctor planet silver engine "
         "travel signal island orange coffee museum season pocket rabbit candle theory mirror "
         "camera basket dinner harbor").split()


class Client(HttpClient):
    def __init__(self, base: str = DEFAULT_URL, timeout: float = 120.0):
        super().__init__(base, "Ollama", timeout=timeout, hint="is `ollama serve` running? set --url")


def unique_prompt(n_words: int, rng: random.Random) -> str:
    """About n_words tokens; starts with a nonce so no two prompts share a cached prefix."""
    nonce = "%08x" % rng.getrandbits(32)
    words = [rng.choice(WORDS) for _ in range(max(n_words - 4, 1))]
    return f"Note {nonce}: " + " ".join(words)


def server_version(client: Client) -> str:
    try:
        data = client.json("GET", "/api/version")
    except ProbeError as e:
        if "cannot reach" in str(e) or "did not answer" in str(e):
            raise
        raise ProbeError(f"{client.base} does not look like an Ollama server (GET /api/version: {_tail(e)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise ProbeError(f"{client.base} does not look like an Ollama server (GET /api/version has no version)")
    return data["version"]


def identify(client: Client, model: str | None) -> tuple[str, dict[str, str]]:
    """(the model's tag on this server, versions) — cheap, for the cache key."""
    version = server_version(client)
    names = _tags(client)
    if not names:
        raise ProbeError(f"Ollama at {client.base} has no models; pull one first, e.g. `ollama pull qwen2.5:1.5b`")
    if model is None:
        loaded = [m for m in _ps_models(client) if m.get("name") in names]
        return (loaded[0]["name"] if loaded else names[0]), {"ollama": version}
    for cand in (model, f"{model}:latest"):
        if cand in names:
            return cand, {"ollama": version}
    raise ProbeError(f"model {model!r} is not on Ollama at {client.base} (it has: {', '.join(names[:8])}); "
                     f"pull it with `ollama pull {model}`")


def _tags(client: Client) -> list[str]:
    data = client.json("GET", "/api/tags")
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ProbeError(f"Ollama at {client.base}: GET /api/tags has no 'models' list (not an Ollama server?)")
    return [m.get("name") or m.get("model") for m in models if isinstance(m, dict) and (m.get("name") or m.get("model"))]


def _ps_models(client: Client) -> list[dict]:
    data = client.json("GET", "/api/ps")
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ProbeError(f"Ollama at {client.base}: GET /api/ps has no 'models' list")
    return [m for m in models if isinstance(m, dict)]


def _size_vram(client: Client, name: str) -> tuple[int, int]:
    for m in _ps_models(client):
        if m.get("name") == name or m.get("model") == name:
            try:
                return int(m["size_vram"]), int(m.get("size") or m["size_vram"])
            except (KeyError, TypeError, ValueError):
                raise ProbeError(f"Ollama at {client.base}: /api/ps entry for {name} has no size_vram") from None
    raise ProbeError(f"Ollama at {client.base}: {name} is not loaded after /api/generate (see /api/ps)")


def _load(client: Client, name: str, num_ctx: int) -> None:
    data = client.json("POST", "/api/generate", json={"model": name, "prompt": "", "stream": False,
                                                      "keep_alive": "5m", "options": {"num_ctx": num_ctx}})
    if not isinstance(data, dict) or data.get("done") is not True:
        raise ProbeError(f"Ollama at {client.base}: loading {name} with num_ctx={num_ctx} did not finish")


def _generate(client: Client, name: str, prompt: str, num_ctx: int) -> dict:
    data = client.json("POST", "/api/generate", json={
        "model": name, "prompt": prompt, "raw": True, "stream": False, "keep_alive": "5m",
        "options": {"num_ctx": num_ctx, "num_predict": NUM_PREDICT, "temperature": 0, "seed": 1}})
    try:
        return {"prompt_eval_count": int(data["prompt_eval_count"]),
                "prompt_eval_ms": int(data["prompt_eval_duration"]) / 1e6,
                "eval_count": int(data["eval_count"]), "eval_ms": int(data["eval_duration"]) / 1e6}
    except (KeyError, TypeError, ValueError):
        raise ProbeError(f"Ollama at {client.base}: /api/generate answered without prompt_eval_duration / "
                         "eval_duration (not Ollama, or a truncated answer)") from None


def model_facts(show: dict) -> dict:
    info = show.get("model_info") or {}
    arch = info.get("general.architecture", "")
    g = lambda key: info.get(f"{arch}.{key}")  # noqa: E731
    heads, kv_heads, emb = g("attention.head_count"), g("attention.head_count_kv"), g("embedding_length")
    head_dim = g("attention.key_length") or (emb // heads if emb and heads else None)
    facts = {"architecture": arch, "layers": g("block_count"), "heads": heads, "kv_heads": kv_heads or heads,
             "head_dim": head_dim, "context_length": g("context_length"), "embedding_length": emb,
             "parameter_count": info.get("general.parameter_count"),
             "quantization": (show.get("details") or {}).get("quantization_level", "")}
    if facts["layers"] and facts["kv_heads"] and head_dim:
        facts["kv_bytes_per_token_f16"] = 2 * facts["layers"] * facts["kv_heads"] * head_dim * 2
    return facts


def probe(client: Client, name: str, *, contexts: list[int] | None = None,
          progress: Callable[[ProbeProgress], None] | None = None, cancel: threading.Event | None = None,
          gpu: str = "", versions: dict[str, str] | None = None, seed: int | None = None) -> ProbeResult:
    t_start = time.perf_counter()
    rng = random.Random(seed if seed is not None else time.time_ns())
    wanted = sorted(set(int(c) for c in (contexts or DEFAULT_CONTEXTS)))
    steps = 3 + len(wanted)
    done = 0

    def report(message: str) -> None:
        nonlocal done
        done += 1
        if cancel is not None and cancel.is_set():
            raise ProbeError("probe cancelled")
        if progress is not None:
            progress(ProbeProgress(step="ollama", fraction=min(done / steps, 1.0), message=message))

    show = client.json("POST", "/api/show", json={"model": name})
    if not isinstance(show, dict):
        raise ProbeError(f"Ollama at {client.base}: /api/show answered no JSON object")
    facts = model_facts(show)
    report(f"{name}: {facts['architecture'] or 'unknown architecture'}, {facts['quantization'] or '?'}")
    warnings: list[str] = []

    ctx_hi = int(math.ceil((max(wanted) * 1.3 + NUM_PREDICT + 64) / 256) * 256)
    ctx_lo = max(256, ctx_hi // 4)
    _load(client, name, ctx_lo)
    vram_lo, size_lo = _size_vram(client, name)
    report(f"loaded at num_ctx={ctx_lo}: {vram_lo / 2**20:,.0f} MiB in VRAM")
    _load(client, name, ctx_hi)
    vram_hi, size_hi = _size_vram(client, name)
    report(f"loaded at num_ctx={ctx_hi}: {vram_hi / 2**20:,.0f} MiB in VRAM")
    kv = (vram_hi - vram_lo) / (ctx_hi - ctx_lo)
    theory = facts.get("kv_bytes_per_token_f16")
    if size_hi > vram_hi:
        warnings.append(f"Ollama keeps {(size_hi - vram_hi) / 2**30:.1f} GiB of {name} in system memory "
                        "(partly offloaded to the CPU): timings are not all-GPU figures")
    if kv <= 0:
        warnings.append(f"size_vram did not grow from num_ctx={ctx_lo} to {ctx_hi}; KV cost per token not measured")
        kv = None
    elif theory and kv / theory > 1.5:
        warnings.append(f"Ollama reserved {kv / theory:.1f}x the f16 KV bytes per num_ctx token: it reserves "
                        "num_ctx for every parallel slot (OLLAMA_NUM_PARALLEL), plus compute buffers")

    timings: list[TimingPoint] = []
    decode: list[float] = []
    reps_raw = []
    for n in wanted:
        runs = [_generate(client, name, unique_prompt(n, rng), ctx_hi) for _ in range(1 + REPETITIONS)]
        reps_raw.append({"context": n, "runs": runs})
        rep0, rest = runs[0], runs[1:]
        counts = [r["prompt_eval_count"] for r in runs]
        if any(c < 0.5 * counts[0] for c in counts[1:]):
            warnings.append(f"at {n} tokens the server evaluated fewer prompt tokens than sent "
                            "(a prompt-cache hit?): prefill times may be too low")
        timings.append(TimingPoint(context_tokens=int(statistics.median(counts)),
                                   ttft_ms=round(statistics.median(r["prompt_eval_ms"] for r in rest), 3),
                                   repetitions=len(rest), rep0_ms=round(rep0["prompt_eval_ms"], 3)))
        decode += [r["eval_count"] / (r["eval_ms"] / 1e3) for r in rest if r["eval_ms"] > 0 and r["eval_count"] > 0]
        report(f"{n:,} tokens: prefill {timings[-1].ttft_ms:.1f} ms (rep 0: {timings[-1].rep0_ms:.1f} ms)")

    return ProbeResult(
        backend="ollama", model=name, gpu=gpu, attention="", dtype=facts["quantization"],
        versions=versions or {}, kv_bytes_per_token=round(kv, 1) if kv else None, ttft=timings,
        decode_tok_s=round(statistics.median(decode), 2) if decode else None,
        max_model_len=facts["context_length"], warnings=warnings,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - t_start, 3),
        extra={"url": client.base, "model_facts": facts, "num_ctx": [ctx_lo, ctx_hi],
               "size_vram": [vram_lo, vram_hi], "kv_bytes_per_token_theory": theory,
               "num_predict": NUM_PREDICT, "repetitions": reps_raw,
               "method": "prefill = prompt_eval_duration, decode = eval_count / eval_duration; unique prompt per rep"})


def _tail(e: Exception) -> str:
    s = str(e)
    return s.split(": ", 1)[1] if ": " in s else s
