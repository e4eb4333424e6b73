"""The Ollama probe (native API, httpx; the address is Ollama's own OLLAMA_HOST, see default_url()).

- /api/version proves it is Ollama; /api/tags lists the models; /api/show gives the architecture.
- KV cost per token: Ollama reserves the KV cache for num_ctx when it loads a model, so the prompt
  length shows no growth. Load twice with different num_ctx (an empty prompt only loads) and read
  /api/ps size_vram each time: (vram_hi - vram_lo) / (ctx_hi - ctx_lo). Both loads stay inside the
  model's context_length, and are always two different sizes.
- TTFT and decode come from Ollama's own prompt_eval_duration / eval_duration (nanoseconds). Every
  repetition sends a unique prompt that differs from its first token: identical prompts hit
  llama.cpp's prompt (KV prefix) cache and report a near-zero prefill. Repetition 0 (cold: first
  shape, graph allocation) is reported apart; the figure is the median of the others.
- Every figure the server reports is checked (type, finite, range) before it is used: a server
  that lies fails in one line (ProbeError, exit 4), never with a traceback or a huge allocation.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from advisor.domain import ProbeProgress, ProbeResult, TimingPoint
from advisor.errors import ProbeError
from advisor.probes.http import HttpClient, normalize_url, number, object_list, one_line, text_field

DEFAULT_PORT = 11434
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_CONTEXTS = (512, 2048)
NUM_PREDICT = 32
REPETITIONS = 3  # after rep 0
DEFAULT_TIMEOUT = 300.0  # one request, start to last byte (a cold load of a large model is slow)
META_TIMEOUT = 30.0      # version, tags, show, ps: small answers

WORDS = ("the river city morning light stone garden window market letter paper number table "
         "road music winter summer forest story water bridge school doctor planet silver engine "
         "travel signal island orange coffee museum season pocket rabbit candle theory mirror "
         "camera basket dinner harbor").split()


def default_url(env: str | None = None) -> str:
    """Where Ollama listens, read from OLLAMA_HOST the way Ollama itself reads it.

    `host`, `host:port`, `:port`, `http://host[:port]`, `https://host/path` (envconfig.Host():
    no scheme means http and port 11434; http:// without a port means 80, https:// 443). A bind-all
    address (0.0.0.0, ::, empty host) is reached on loopback. Unset: http://127.0.0.1:11434.
    """
    s = (os.environ.get("OLLAMA_HOST", "") if env is None else env).strip().strip("\"'").strip()
    port = str(DEFAULT_PORT)
    if "://" in s:
        scheme, hostport = s.split("://", 1)
        scheme = scheme.lower()
        port = {"http": "80", "https": "443"}.get(scheme, port)
    elif s == "ollama.com":
        scheme, hostport = "https", "ollama.com:443"
    else:
        scheme, hostport = "http", s
    hostport, _, path = hostport.partition("/")
    try:
        host, p = _split_host_port(hostport)
        port = p
    except ValueError:
        host = hostport.strip("[]")
    if not (port.isdigit() and 0 < int(port) <= 65535):
        port = {"http": "80", "https": "443"}.get(scheme, str(DEFAULT_PORT)) if "://" in s else str(DEFAULT_PORT)
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}" + (f"/{path.strip('/')}" if path.strip("/") else "")


def _split_host_port(hp: str) -> tuple[str, str]:
    """Go's net.SplitHostPort: 'h:p', '[v6]:p', ':p'; ValueError without exactly one port."""
    if hp.startswith("["):
        end = hp.find("]")
        if end < 0 or not hp[end + 1:].startswith(":"):
            raise ValueError(hp)
        return hp[1:end], hp[end + 2:]
    if hp.count(":") != 1:
        raise ValueError(hp)
    host, port = hp.split(":")
    return host, port


class Client(HttpClient):
    def __init__(self, base: str | None = None, timeout: float | None = DEFAULT_TIMEOUT,
                 cancel: threading.Event | None = None):
        if base is None:
            base = normalize_url(default_url(), field="OLLAMA_HOST")
        super().__init__(base, "Ollama", timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
                         hint="is `ollama serve` running? set --url", cancel=cancel)


def unique_prompt(n_words: int, rng: random.Random) -> str:
    """About n_words tokens; starts with a nonce so no two prompts share a cached prefix."""
    nonce = f"{rng.getrandbits(32):08x}"
    words = [rng.choice(WORDS) for _ in range(max(n_words - 4, 1))]
    return f"Note {nonce}: " + " ".join(words)


def fit_contexts(wanted: list[int], most: int, why: str) -> tuple[list[int], list[str]]:
    """The prompt sizes to send: each wanted size, or `most` where it would not fit (said in a warning)."""
    out: set[int] = set()
    warnings = []
    for n in sorted(set(wanted)):
        if n <= most:
            out.add(n)
        elif most < 16:
            warnings.append(f"{n:,} tokens skipped: {why} leaves no room for a prompt")
        else:
            warnings.append(f"{n:,} tokens do not fit {why}: measured at {most:,} instead")
            out.add(most)
    return sorted(out), warnings


def probe_start(contexts, seed: int | None) -> tuple[float, random.Random, list[int]]:
    """What every probe() starts from: the clock, the prompts' RNG (seeded, or by the time), the sizes
    sorted once each."""
    return (time.perf_counter(), random.Random(seed if seed is not None else time.time_ns()),
            sorted(set(int(c) for c in contexts)))


def step_reporter(step: str, steps: int, progress: Callable[[ProbeProgress], None] | None,
                  cancel: threading.Event | None) -> Callable[[str], None]:
    """A probe's `report(message)`: one more of `steps` done, told to `progress`; ProbeError once cancelled."""
    done = 0

    def report(message: str) -> None:
        nonlocal done
        done += 1
        if cancel is not None and cancel.is_set():
            raise ProbeError("probe cancelled")
        if progress is not None:
            progress(ProbeProgress(step=step, fraction=min(done / steps, 1.0), message=one_line(message, 300)))

    return report


def list_tags(url: str | None = None, timeout: float = 0.5) -> list[str]:
    """The tags an Ollama server offers, sorted (for pickers); raises ProbeError when none answers."""
    with Client(url, timeout=timeout) as c:
        return sorted(_tags(c))


def server_version(client: Client) -> str:
    try:
        data = client.json("GET", "/api/version", timeout=META_TIMEOUT)
    except ProbeError as e:
        msg = str(e)
        if any(w in msg for w in ("cannot reach", "did not answer", "did not accept", "cancelled", "HTTP/1.1")):
            raise
        raise ProbeError(f"{client.base} does not look like an Ollama server (GET /api/version: {_tail(e)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise ProbeError(f"{client.base} does not look like an Ollama server (GET /api/version has no version)")
    return one_line(data["version"], 40)


def identify(client: Client, model: str | None) -> tuple[str, dict[str, str]]:
    """(the model's tag on this server, versions) — cheap, for the cache key."""
    version = server_version(client)
    names = _tags(client)
    if not names:
        raise ProbeError(f"Ollama at {client.base} has no models; pull one first, e.g. `ollama pull qwen2.5:1.5b`")
    if model is None:
        loaded = [m["name"] for m in _ps_models(client) if m.get("name") in names]
        return (loaded[0] if loaded else names[0]), {"ollama": version}
    for cand in (model, f"{model}:latest"):
        if cand in names:
            return cand, {"ollama": version}
    raise ProbeError(f"model {one_line(model, 80)!r} is not on Ollama at {client.base} "
                     f"(it has: {one_line(', '.join(names[:8]), 200)}); "
                     f"pull it with `ollama pull {one_line(model, 80)}`")


def _tags(client: Client) -> list[str]:
    where = f"Ollama at {client.base}: GET /api/tags"
    names = []
    for i, m in enumerate(object_list(client, "/api/tags", "models", where, " (not an Ollama server?)",
                                      timeout=META_TIMEOUT)):
        name = m.get("name") or m.get("model")
        if name is not None:
            names.append(text_field(name, f"models[{i}].name", where, optional=False, limit=300))
    return names


def _ps_models(client: Client) -> list[dict]:
    data = client.json("GET", "/api/ps", timeout=META_TIMEOUT)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ProbeError(f"Ollama at {client.base}: GET /api/ps has no 'models' list")
    return [m for m in models if isinstance(m, dict)]


def _size_vram(client: Client, name: str) -> tuple[int, int]:
    where = f"Ollama at {client.base}: /api/ps entry for {name}"
    for m in _ps_models(client):
        if m.get("name") == name or m.get("model") == name:
            if m.get("size_vram") is None:
                raise ProbeError(f"{where} has no size_vram")
            vram = number(m["size_vram"], "size_vram", where, hi=2**50, integer=True)
            size = number(m.get("size", vram) or vram, "size", where, hi=2**50, integer=True)
            return vram, max(size, vram)
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
    keys = ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")
    if not isinstance(data, dict) or any(data.get(k) is None for k in keys):
        raise ProbeError(f"Ollama at {client.base}: /api/generate answered without prompt_eval_duration / "
                         "eval_duration (not Ollama, or a truncated answer)")
    where = f"Ollama at {client.base}: /api/generate"
    return {"prompt_eval_count": number(data["prompt_eval_count"], "prompt_eval_count", where, hi=1e8, integer=True),
            "prompt_eval_ms": number(data["prompt_eval_duration"], "prompt_eval_duration", where, hi=1e13) / 1e6,
            "eval_count": number(data["eval_count"], "eval_count", where, hi=1e8, integer=True),
            "eval_ms": number(data["eval_duration"], "eval_duration", where, hi=1e13) / 1e6}


def model_facts(show: dict, where: str = "Ollama /api/show") -> dict:
    """The architecture figures of /api/show, each checked; per-layer lists (variable GQA) allowed."""
    info = show.get("model_info")
    if info is None:
        info = {}
    if not isinstance(info, dict):
        raise ProbeError(f"{where}: model_info is a {type(info).__name__}, not an object")
    details = show.get("details")
    if details is None:
        details = {}
    if not isinstance(details, dict):
        raise ProbeError(f"{where}: details is a {type(details).__name__}, not an object")
    arch = text_field(info.get("general.architecture"), "general.architecture", where, limit=64) or ""

    def count(key: str, hi: float, per_layer: bool = False):
        value = info.get(f"{arch}.{key}") if arch else None
        field = f"{arch}.{key}"
        if per_layer and isinstance(value, list):
            if not value or len(value) > 10_000:
                raise ProbeError(f"{where}: {field} is a list of {len(value)} entries, not one per layer")
            return [number(v, f"{field}[{i}]", where, lo=0, hi=hi, integer=True) for i, v in enumerate(value)]
        return number(value, field, where, lo=1, hi=hi, integer=True, optional=True)

    layers = count("block_count", 10_000)
    heads = count("attention.head_count", 65_536, per_layer=True)
    kv_heads = count("attention.head_count_kv", 65_536, per_layer=True)
    emb = count("embedding_length", 2**20)
    key_len = count("attention.key_length", 65_536)
    ctx = count("context_length", 1e9)
    params = number(info.get("general.parameter_count"), "general.parameter_count", where, hi=1e14,
                    integer=True, optional=True)
    quant = text_field(details.get("quantization_level"), "details.quantization_level", where, limit=40) or ""
    top_heads = max(heads) if isinstance(heads, list) and heads else heads
    head_dim = key_len or (emb // top_heads if emb and top_heads else None)
    kv = kv_heads if kv_heads else heads
    if isinstance(kv, list) and layers and len(kv) != layers:
        raise ProbeError(f"{where}: {arch}.attention.head_count_kv lists {len(kv)} layers, block_count says {layers}")
    facts = {"architecture": arch, "layers": layers, "heads": top_heads,
             "kv_heads": max(kv) if isinstance(kv, list) else kv, "head_dim": head_dim, "context_length": ctx,
             "embedding_length": emb, "parameter_count": params, "quantization": quant}
    if layers and kv and head_dim:
        kv_sum = sum(kv) if isinstance(kv, list) else layers * kv
        facts["kv_bytes_per_token_f16"] = 2 * kv_sum * head_dim * 2
    return facts


def probe(client: Client, name: str, *, contexts: list[int] | None = None,
          progress: Callable[[ProbeProgress], None] | None = None, cancel: threading.Event | None = None,
          gpu: str = "", versions: dict[str, str] | None = None, seed: int | None = None) -> ProbeResult:
    t_start, rng, wanted = probe_start(contexts or DEFAULT_CONTEXTS, seed)
    report = step_reporter("ollama", 3 + len(wanted), progress, cancel)

    show = client.json("POST", "/api/show", json={"model": name}, timeout=META_TIMEOUT)
    if not isinstance(show, dict):
        raise ProbeError(f"Ollama at {client.base}: /api/show answered no JSON object")
    facts = model_facts(show, f"Ollama at {client.base}: /api/show")
    report(f"{name}: {facts['architecture'] or 'unknown architecture'}, {facts['quantization'] or '?'}")
    warnings: list[str] = []

    # Two loads at different num_ctx, inside the model's context; the prompts must fit the larger.
    limit = facts["context_length"]
    ctx_hi = max(int(math.ceil((max(wanted) * 1.3 + NUM_PREDICT + 64) / 256) * 256), 1024)
    if limit and ctx_hi > limit:
        ctx_hi = int(limit)
    ctx_lo = max(256, ctx_hi // 4) if ctx_hi >= 1024 else ctx_hi // 2
    if ctx_lo < 16 or ctx_lo >= ctx_hi:
        raise ProbeError(f"Ollama at {client.base}: {name}'s context_length {limit} is too small to measure")
    most = int((ctx_hi - NUM_PREDICT - 64) / 1.3)
    why = f"{name}'s context_length {limit:,}" if limit and ctx_hi == limit else f"num_ctx {ctx_hi:,}"
    sizes, skipped = fit_contexts(wanted, most, why)
    warnings += skipped
    if not sizes:
        raise ProbeError(f"Ollama at {client.base}: no prompt size fits {why}")

    _load(client, name, ctx_lo)
    vram_lo, size_lo = _size_vram(client, name)
    report(f"loaded at num_ctx={ctx_lo}: {vram_lo / 2**20:,.0f} MiB in VRAM")
    _load(client, name, ctx_hi)
    vram_hi, size_hi = _size_vram(client, name)
    report(f"loaded at num_ctx={ctx_hi}: {vram_hi / 2**20:,.0f} MiB in VRAM")
    kv: float | None  # None: not measured (said in a warning)
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
    for n in sizes:
        runs = [_generate(client, name, unique_prompt(n, rng), ctx_hi) for _ in range(1 + REPETITIONS)]
        reps_raw.append({"context": n, "runs": runs})
        rep0, rest = runs[0], runs[1:]
        counts = [r["prompt_eval_count"] for r in runs]
        if any(c < 0.5 * counts[0] for c in counts[1:]):
            warnings.append(f"at {n} tokens the server evaluated fewer prompt tokens than sent "
                            "(a prompt-cache hit?): prefill times may be too low")
        timings.append(TimingPoint(context_tokens=max(int(statistics.median(counts)), 1),
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
