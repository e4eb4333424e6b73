"""The transformers probe: a real architecture with random weights, measured on this GPU.

Weights' values change neither memory nor time, so a catalog model is built from its stored
config facts (no download), or from a local HF directory's config.json. What it measures:

- base memory after load (torch's allocator: the weights and buffers, no CUDA context);
- the peak-memory curve at a few contexts, measured the way generate() and servers prefill
  (`logits_to_keep=1`: only the last token's logits) and also for a plain full-logits forward,
  so TR127's figures (which kept logits for every prompt token) can be compared;
- a fit that extrapolates: linear for sdpa/flash, plus the known heads x n^2 term for eager;
- TTFT (median of >= 3 prefills after a warm-up, a fresh random prompt each time) and decode
  tok/s (a timed loop of single-token forwards over the KV cache).

Safe: before each point the peak is predicted and the point skipped if it would not fit in
free memory; an out-of-memory error is caught, the memory freed and the point reported "oom";
Ctrl-C (or the cancel event) frees everything before it propagates.

On a machine without CUDA it runs on the CPU for small architectures (the tests do): memory is
then the bytes of live tensors tracked op by op, which matches what CUDA's allocator counts up
to its rounding. GPU peak VRAM needs CUDA.

torch and transformers are imported here, lazily, and nowhere at start-up.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from advisor.domain import CurvePoint, ModelSpec, ProbeProgress, ProbeResult, TimingPoint, TtftFit
from advisor.errors import ProbeError
from advisor.probes.fit import MIB, eager_quadratic_bytes, fit_curve, fit_ttft, ttft_from_batches

DTYPES = {"float16": 2, "bfloat16": 2, "float32": 4}
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")
DEFAULT_CONTEXTS = (512, 1024, 2048)
FREE_HEADROOM = 0.92  # use at most this share of free memory for one point


class Cancelled(Exception):
    pass


# ------------------------------------------------------------------ model facts and building
@dataclass
class ArchFacts:
    """What memory and time depend on, from a ModelSpec or a config."""

    label: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_context: int
    hf_architecture: str = ""

    def kv_bytes_per_token(self, dtype_bytes: int) -> float:
        return 2.0 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    def activation_bytes_per_token(self, dtype_bytes: int) -> float:
        """Rough live activations per prompt token at a layer's peak (MLP: act, up, product)."""
        return dtype_bytes * (3 * self.intermediate + 4 * self.hidden + 2 * self.heads * self.head_dim)


def facts_from_spec(spec: ModelSpec) -> ArchFacts:
    return ArchFacts(label=spec.id, layers=spec.layers, hidden=spec.hidden_size, heads=spec.attention_heads,
                     kv_heads=spec.kv_heads, head_dim=spec.head_dim, intermediate=spec.intermediate_size,
                     vocab=spec.vocab_size, max_context=spec.max_context, hf_architecture=spec.hf_architecture)


def facts_from_config(cfg, label: str) -> ArchFacts:
    def g(*names: str, default: Any = None) -> Any:
        return next((getattr(cfg, n) for n in names if getattr(cfg, n, None) is not None), default)

    hidden = int(g("hidden_size", "n_embd"))
    heads = int(g("num_attention_heads", "n_head"))
    head_dim = int(g("head_dim", default=hidden // heads))
    archs = getattr(cfg, "architectures", None) or [""]
    return ArchFacts(label=label, layers=int(g("num_hidden_layers", "n_layer")), hidden=hidden, heads=heads,
                     kv_heads=int(g("num_key_value_heads", default=heads)), head_dim=head_dim,
                     intermediate=int(g("intermediate_size", "n_inner", default=4 * hidden) or 4 * hidden),
                     vocab=int(g("vocab_size")),
                     max_context=int(g("max_position_embeddings", "n_positions", default=4096)),
                     hf_architecture=archs[0])


def config_from_spec(spec: ModelSpec):
    """A transformers config for a catalog architecture, from the stored facts."""
    import transformers

    # Any: 5.x's typed config signatures leave out the keywords their __init__ still takes through
    # **kwargs (rope_theta, partial_rotary_factor: folded into rope_parameters), which 4.x names
    tf: Any = transformers

    arch = spec.hf_architecture
    common = dict(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size,
                  intermediate_size=spec.intermediate_size, num_hidden_layers=spec.layers,
                  num_attention_heads=spec.attention_heads, num_key_value_heads=spec.kv_heads,
                  max_position_embeddings=spec.max_context, tie_word_embeddings=spec.tied_embeddings)
    rope = {"rope_theta": spec.rope_theta} if spec.rope_theta else {}
    if arch == "Qwen2ForCausalLM":
        cfg = tf.Qwen2Config(**common, **rope)
    elif arch == "LlamaForCausalLM":
        cfg = tf.LlamaConfig(**common, head_dim=spec.head_dim, **rope)
    elif arch == "MistralForCausalLM":
        cfg = tf.MistralConfig(**common, head_dim=spec.head_dim, sliding_window=None, **rope)
    elif arch == "PhiForCausalLM":
        cfg = tf.PhiConfig(**common, partial_rotary_factor=0.4, **rope)
    elif arch == "GPT2LMHeadModel":
        cfg = tf.GPT2Config(vocab_size=spec.vocab_size, n_positions=spec.max_context, n_embd=spec.hidden_size,
                            n_layer=spec.layers, n_head=spec.attention_heads, n_inner=spec.intermediate_size,
                            tie_word_embeddings=spec.tied_embeddings)
    else:
        raise ProbeError(f"model {spec.id}: architecture {arch} is not one the probe can build "
                         "(Qwen2, Llama, Mistral, Phi, GPT-2); point --model at a local HF directory instead")
    cfg.architectures = [arch]
    return cfg


def resolve_label(model: str, knowledge) -> str:
    """The name a result is stored under: a catalog id, or a local directory's absolute path."""
    if os.path.isdir(model):
        return os.path.abspath(model)
    if os.path.sep in model or model.startswith("."):
        raise ProbeError(f"--model {model!r}: no such directory (expected a catalog id or a local HF model directory)")
    return knowledge.model(model, field="--model").id


def resolve_model(model: str, knowledge) -> tuple[Any, ArchFacts, str]:
    """(config, facts, label) for a catalog id or a local HF directory with config.json."""
    if os.path.isdir(model):
        path = os.path.join(model, "config.json")
        if not os.path.isfile(path):
            raise ProbeError(f"--model {model!r}: the directory has no config.json "
                             "(not a Hugging Face model directory)")
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(model)
        except Exception as e:
            raise ProbeError(f"--model {model!r}: config.json could not be read ({_one_line(e)})") from None
        label = os.path.abspath(model)
        return cfg, facts_from_config(cfg, label), label
    spec = knowledge.model(model, field="--model")
    return config_from_spec(spec), facts_from_spec(spec), spec.id


def build_model(cfg, attention: str, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    tdtype = getattr(torch, dtype)
    with torch.device(device):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=tdtype, attn_implementation=attention)
        except TypeError:  # transformers 4.x names it torch_dtype
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=tdtype, attn_implementation=attention)
        except (ValueError, ImportError) as e:
            raise ProbeError(f"attention {attention!r} is not available here ({_one_line(e)})") from None
    model.eval()
    got = getattr(model.config, "_attn_implementation", attention)
    return model, got


# ------------------------------------------------------------------ memory meters
class _CudaMeter:
    kind = "cuda allocator (torch.cuda.max_memory_allocated)"

    def __init__(self, torch, device):
        self.torch, self.device = torch, device

    def sync(self):
        self.torch.cuda.synchronize(self.device)

    def allocated_mb(self) -> float:
        return self.torch.cuda.memory_allocated(self.device) / MIB

    def free_mb(self) -> float:
        # Cached blocks are fragmented: a 30 GB score matrix needs a fresh segment, so give them back
        # and count only what the driver says is free.
        self.torch.cuda.empty_cache()
        free, _total = self.torch.cuda.mem_get_info(self.device)
        return free / MIB

    def start(self):
        self.sync()
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> float:
        self.sync()
        return self.torch.cuda.max_memory_allocated(self.device) / MIB

    def tracking(self):
        import contextlib

        return contextlib.nullcontext()

    def empty(self):
        self.torch.cuda.empty_cache()


class _CpuMeter:
    """Live tensor bytes, tracked op by op with a dispatch mode (the CPU allocator keeps no stats)."""

    kind = "live tensor bytes on the CPU (op-by-op tracking; not GPU VRAM)"

    def __init__(self, torch, model):
        self.torch = torch
        self._static = {p.untyped_storage()._cdata for p in list(model.parameters()) + list(model.buffers())}
        self.base_bytes = sum(p.untyped_storage().nbytes() for p in _unique_storages(model))
        self.current_extra = 0
        self.peak_extra = 0
        self._tracker = None

    def sync(self):
        pass

    def allocated_mb(self) -> float:
        return (self.base_bytes + self._live_extra()) / MIB

    def _live_extra(self) -> int:
        return self._tracker.live_bytes() if self._tracker is not None else 0

    def free_mb(self) -> float:
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return 4096.0

    def start(self):
        if self._tracker is None:
            self._tracker = _make_tracker(self.torch, self._static)
        self._tracker.reset_peak()

    def peak_mb(self) -> float:
        return (self.base_bytes + self._tracker.peak) / MIB

    def tracking(self):
        if self._tracker is None:
            self._tracker = _make_tracker(self.torch, self._static)
        return self._tracker

    def empty(self):
        pass


def _unique_storages(model):
    seen, out = set(), []
    for p in list(model.parameters()) + list(model.buffers()):
        k = p.untyped_storage()._cdata
        if k not in seen:
            seen.add(k)
            out.append(p)
    return out


def _make_tracker(torch, static: set):
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Tracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, tuple[Any, int]] = {}
            self.current = 0
            self.peak = 0

        def reset_peak(self):
            self._sweep()
            self.peak = self.current

        def live_bytes(self) -> int:
            self._sweep()
            return self.current

        def _sweep(self):
            dead = [k for k, (ref, _) in self.live.items() if ref.expired()]
            for k in dead:
                self.current -= self.live.pop(k)[1]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self._sweep()
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                    st = t.untyped_storage()
                    key = st._cdata
                    if key in static or key in self.live:
                        continue
                    nbytes = st.nbytes()
                    self.live[key] = (StorageWeakRef(st), nbytes)
                    self.current += nbytes
            self.peak = max(self.peak, self.current)
            return out

    return Tracker()


# ------------------------------------------------------------------ forward helpers
class _Runner:
    def __init__(self, torch, model, device):
        import inspect

        self.torch, self.model, self.device = torch, model, device
        params = inspect.signature(model.forward).parameters
        self.keep_kw = "logits_to_keep" if "logits_to_keep" in params else (
            "num_logits_to_keep" if "num_logits_to_keep" in params else None)
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.vocab = model.config.vocab_size if hasattr(model.config, "vocab_size") else None

    def ids(self, n: int, gen, batch: int = 1):
        return self.torch.randint(0, self.vocab, (batch, n), device=self.device, generator=gen)

    def prefill(self, ids, full_logits: bool):
        kw: dict[str, Any] = {"use_cache": True}
        if self.keep_kw:
            kw[self.keep_kw] = 0 if full_logits else 1
        out = self.model(input_ids=ids, **kw)
        nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        return out, nxt

    def cache_of(self, out):
        if getattr(out, "cache", None) is not None:
            return getattr(out, "cache", None)
        return getattr(out, "past_key_values", None)

    def step(self, tok, cache):
        kw = {"use_cache": True, self.cache_kw: cache}
        if self.keep_kw:
            kw[self.keep_kw] = 1
        out = self.model(input_ids=tok, **kw)
        return out, out.logits[:, -1, :].argmax(dim=-1, keepdim=True)


def _cache_bytes(cache) -> int | None:
    """Bytes held by a transformers KV cache object (5.x `.layers[i].keys/values`, 4.x `key_cache`)."""
    if cache is None:
        return None
    tensors = []
    layers = getattr(cache, "layers", None)
    if layers:
        for layer in layers:
            for name in ("keys", "values"):
                t = getattr(layer, name, None)
                if t is not None and hasattr(t, "numel"):
                    tensors.append(t)
    else:
        for name in ("key_cache", "value_cache"):
            tensors += [t for t in (getattr(cache, name, None) or []) if hasattr(t, "numel")]
    if not tensors:
        return None
    return sum(t.numel() * t.element_size() for t in tensors)


def _is_oom(torch, e: BaseException) -> bool:
    if (isinstance(e, getattr(torch, "OutOfMemoryError", ()))
            or isinstance(e, getattr(torch.cuda, "OutOfMemoryError", ()))):
        return True
    msg = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg
                                            or "not enough memory" in msg)


def _one_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else e.__class__.__name__)[:200]


# ------------------------------------------------------------------ the probe
@dataclass
class _Ctx:
    progress: Callable[[ProbeProgress], None] | None
    cancel: threading.Event | None
    steps_total: int
    steps_done: int = 0

    def report(self, step: str, message: str, point: CurvePoint | None = None, advance: bool = True):
        if advance:
            self.steps_done += 1
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        if self.progress is not None:
            self.progress(ProbeProgress(step=step, fraction=min(self.steps_done / self.steps_total, 1.0),
                                        message=message, point=point))


def probe_transformers(model: str, *, knowledge, attention: str = "sdpa", dtype: str = "float16",
                       contexts: list[int] | None = None, device: str | None = None, gpu_name: str = "",
                       progress: Callable[[ProbeProgress], None] | None = None,
                       cancel: threading.Event | None = None, repetitions: int = 3,
                       decode_tokens: int = 32, full_logits: bool = True, seed: int = 0) -> ProbeResult:
    """Measure one model on this GPU (or the CPU with device="cpu"). Frees every byte on any exit."""
    try:
        return _probe_body(model, knowledge=knowledge, attention=attention, dtype=dtype, contexts=contexts,
                           device=device, gpu_name=gpu_name, progress=progress, cancel=cancel,
                           repetitions=repetitions, decode_tokens=decode_tokens, full_logits=full_logits, seed=seed)
    except KeyboardInterrupt as e:
        # The traceback's frames hold the model and activations; drop them so the memory goes now.
        e.__traceback__ = None
    except ProbeError as e:
        _drop_frames(e)
        raise e from None
    finally:
        _release_memory()
    # only a Ctrl-C gets here (every other way out returned or raised): raise it again, memory freed
    raise KeyboardInterrupt


def _drop_frames(e: BaseException | None) -> None:
    while e is not None:
        e.__traceback__ = None
        e = e.__context__


def _release_memory():
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear is not None:
                clear()  # cuBLAS keeps a workspace (~32 MiB on Hopper) from the allocator until told
            torch.cuda.empty_cache()
    except Exception:
        pass


def _probe_body(model, *, knowledge, attention, dtype, contexts, device, gpu_name, progress, cancel,
                repetitions, decode_tokens, full_logits, seed) -> ProbeResult:
    if attention not in ATTENTIONS:
        raise ProbeError(f"--attention: {attention!r} is not allowed; expected one of {', '.join(ATTENTIONS)}")
    if dtype not in DTYPES:
        raise ProbeError(f"--dtype: {dtype!r} is not allowed; expected one of {', '.join(DTYPES)}")
    t_start = time.perf_counter()
    try:
        import torch
        import transformers
    except ImportError as e:
        raise ProbeError(f"the transformers probe needs torch and transformers ({_one_line(e)}); "
                         "install them with: pip install 'advisor[probe]'") from None
    if device is None:
        if not torch.cuda.is_available():
            raise ProbeError(f"torch {torch.__version__} sees no CUDA GPU; install a CUDA build of torch "
                             "(pip install 'advisor[probe]') or plan for a catalog GPU with --gpu NAME")
        device = "cuda:0"
    on_cuda = device.startswith("cuda")
    cfg, facts, label = resolve_model(model, knowledge)
    es = DTYPES[dtype]
    wanted = sorted(set(int(c) for c in (contexts or DEFAULT_CONTEXTS)))
    if not wanted or wanted[0] <= 0:
        raise ProbeError("--contexts: every context must be a positive number of tokens")
    ctx = _Ctx(progress, cancel, steps_total=1 + len(wanted) + 3)
    warnings: list[str] = []
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    if on_cuda:
        versions["cuda"] = str(torch.version.cuda)
        gpu_name = gpu_name or torch.cuda.get_device_name(torch.device(device))
    else:
        gpu_name = gpu_name or "cpu"

    model_obj = runner = None
    meter: Any = None
    try:
        ctx.report("load", f"building {label} ({attention}, {dtype}) with random weights on {device}", advance=False)
        if on_cuda:
            torch.cuda.init()  # the caching allocator answers stats only once CUDA is initialised
            torch.cuda.set_device(torch.device(device))
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            alloc_before = torch.cuda.memory_allocated(device) / MIB
        t_load = time.perf_counter()
        try:
            model_obj, attn_got = build_model(cfg, attention, dtype, device)
        except Exception as e:
            if _is_oom(torch, e):
                raise ProbeError(f"{label} does not fit on {gpu_name}: "
                                 "out of memory while loading the weights") from None
            raise
        meter = _CudaMeter(torch, device) if on_cuda else _CpuMeter(torch, model_obj)
        meter.sync()
        load_s = time.perf_counter() - t_load
        base_mb = (meter.allocated_mb() - alloc_before) if on_cuda else meter.allocated_mb()
        ctx.report("load", f"loaded in {load_s:.1f} s: {base_mb:,.0f} MiB")
        t_probe = time.perf_counter()
        runner = _Runner(torch, model_obj, device)
        if runner.keep_kw is None:
            warnings.append(f"transformers {transformers.__version__} has no logits_to_keep: "
                            "the generate()-style peak includes full logits")
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        q_known_mb = eager_quadratic_bytes(facts.heads, es) / MIB if attention == "eager" else 0.0

        with torch.inference_mode(), meter.tracking():
            # warm-up: kernels, cuBLAS workspace, allocator pools
            _run_once(torch, runner, meter, runner.ids(min(64, wanted[0]), gen), full=False)
            curve: list[CurvePoint] = []
            timings: list[TimingPoint] = []
            kv_measured: list[float] = []
            for n in wanted:
                point, timing, kvb = _measure_point(torch, runner, meter, gen, n, curve, facts, es, attention,
                                                    q_known_mb, base_mb, repetitions, full_logits, ctx)
                curve.append(point)
                if timing is not None:
                    timings.append(timing)
                if kvb is not None:
                    kv_measured.append(kvb / n)
                msg = (f"{n:,} tokens: peak {point.peak_mb:,.0f} MiB" if point.status == "ok"
                       else f"{n:,} tokens: {point.status} ({point.note})")
                if timing is not None:
                    msg += f", TTFT {timing.ttft_ms:.1f} ms"
                ctx.report("curve", msg, point=point)
            decode = None
            ok = [p for p in curve if p.status == "ok"]
            pre_fit = fit_curve([(p.context_tokens, p.peak_mb) for p in ok], attention,
                                known_quadratic_mb=q_known_mb if attention == "eager" else None)
            batches = _batch_timings(torch, runner, meter, gen, ok, pre_fit, base_mb, ctx) if pre_fit else []
            ctx.report("ttft", f"throughput: {len(batches)} batched prefills timed")
            if ok:
                decode, decode_how = _decode_tok_s(torch, runner, meter, gen, ok[0].context_tokens, decode_tokens)
                ctx.report("decode", f"decode {decode or 0:.1f} tok/s after {ok[0].context_tokens:,} tokens")
            else:
                decode_how = ""
                ctx.report("decode", "no context fitted; decode not measured")
        probe_s = time.perf_counter() - t_probe

        fit = fit_curve([(p.context_tokens, p.peak_mb) for p in ok], attention,
                        known_quadratic_mb=q_known_mb if attention == "eager" else None)
        full_fit = fit_curve([(p.context_tokens, p.full_logits_peak_mb) for p in ok
                              if p.full_logits_peak_mb is not None], attention,
                             known_quadratic_mb=q_known_mb if attention == "eager" else None)
        singles = [(t.context_tokens, t.ttft_ms) for t in timings]
        ttft_fit = ttft_from_batches(singles, batches) or fit_ttft(singles)  # a dict, with the fit's diagnostics
        if len(ok) < 2:
            warnings.append(f"only {len(ok)} context(s) fitted in memory: no curve fit")
        for p in curve:
            if p.status != "ok":
                warnings.append(f"{p.context_tokens:,} tokens {p.status}: {p.note}")
        if attn_got != attention:
            warnings.append(f"asked for {attention} attention, transformers used {attn_got}")
        if not on_cuda:
            warnings.append("ran on the CPU: memory is live tensor bytes, not GPU VRAM; GPU peak memory needs CUDA")
        kv = statistics.median(kv_measured) if kv_measured else facts.kv_bytes_per_token(es)
        extra: dict[str, Any] = {
            "device": device, "memory_meter": meter.kind, "load_s": round(load_s, 3), "probe_s": round(probe_s, 3),
            "attn_implementation": attn_got, "full_logits_fit": full_fit.model_dump() if full_fit else None,
            "eager_quadratic_mb_per_token2": q_known_mb or None,
            "kv_bytes_per_token_theory": facts.kv_bytes_per_token(es),
            "architecture": {"hf_architecture": facts.hf_architecture, "layers": facts.layers,
                             "hidden": facts.hidden, "heads": facts.heads, "kv_heads": facts.kv_heads,
                             "head_dim": facts.head_dim, "vocab": facts.vocab},
            "decode_tokens": decode_tokens, "decode_method": decode_how, "repetitions": repetitions,
        }
        ctx.report("done", f"done in {probe_s:.1f} s after load")
        return ProbeResult(backend="transformers", model=label, gpu=gpu_name, attention=attention, dtype=dtype,
                           versions=versions, base_vram_mb=round(base_mb, 3), curve=curve, fit=fit,
                           kv_bytes_per_token=round(kv, 1), ttft=timings,
                           decode_tok_s=round(decode, 2) if decode else None,
                           max_model_len=facts.max_context, warnings=warnings,
                           measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           duration_s=round(time.perf_counter() - t_start, 3),
                           ttft_fit=TtftFit.model_validate(ttft_fit) if ttft_fit else None, extra=extra)
    except Cancelled:
        raise ProbeError("probe cancelled; its memory was freed") from None
    finally:
        model_obj = runner = meter = None  # noqa: F841 - drop the references before the caller frees memory


def predict_peak_mb(n: int, done: list[CurvePoint], facts: ArchFacts, es: int, attention: str,
                    q_known_mb: float, base_mb: float) -> float:
    """What the next point will peak at: the fit of the points so far, else the architecture's facts."""
    ok = [(p.context_tokens, p.peak_mb) for p in done if p.status == "ok" and p.peak_mb is not None]
    per_token = (facts.kv_bytes_per_token(es) + facts.activation_bytes_per_token(es)) / MIB
    q = q_known_mb if attention == "eager" else 0.0
    if len(ok) >= 2:
        fit = fit_curve(ok, attention, known_quadratic_mb=q if attention == "eager" else None)
        if fit is not None:
            return fit.predict(n)
    if len(ok) == 1:
        n0, p0 = ok[0]
        return p0 + per_token * (n - n0) + q * (n * n - n0 * n0)
    return base_mb + per_token * n + q * n * n + facts.vocab * 4 / MIB


def fragmentation_margin_mb(n: int, facts: ArchFacts, attention: str) -> float:
    """Room beyond the predicted peak that eager attention needs in practice.

    Its peak is a few huge blocks (the float32 probabilities are heads x n^2 x 4 bytes: 34 GB for
    32 heads at 16K). On an H100 a 69 GB predicted peak of that shape ran out of memory with 79 GB
    free (bench/results/probe-gpu-h100.md): the caching allocator could not place one more block
    of that size. Require room for one.
    """
    return facts.heads * n * n * 4 / MIB if attention == "eager" else 0.0


def _measure_point(torch, runner, meter, gen, n, done, facts, es, attention, q_known_mb, base_mb,
                   repetitions, full_logits, ctx):
    predicted = predict_peak_mb(n, done, facts, es, attention, q_known_mb, base_mb)
    point = CurvePoint(context_tokens=n, predicted_mb=round(predicted, 3))
    if n > facts.max_context:
        point.status, point.note = "skipped", f"beyond the model's {facts.max_context:,}-token context"
        return point, None, None
    free = meter.free_mb()
    margin = fragmentation_margin_mb(n, facts, attention)
    need = predicted - meter.allocated_mb() + margin
    if need > free * FREE_HEADROOM:
        extra = f" + {margin:,.0f} MiB for one more score block" if margin >= 1 else ""
        point.status, point.note = "skipped", (f"predicted peak {predicted:,.0f} MiB{extra} would not fit "
                                               f"({free:,.0f} MiB free)")
        return point, None, None
    times: list[float] = []
    kv_bytes = None
    try:
        # rep 0: measures the peak and is the warm-up for this shape
        peak, t0, kv_bytes = _run_once(torch, runner, meter, runner.ids(n, gen), full=False, want_cache=True)
        point.peak_mb = round(peak, 3)
        for _ in range(repetitions):
            ctx.report("ttft", f"{n:,} tokens: timing", advance=False)
            _, t, _ = _run_once(torch, runner, meter, runner.ids(n, gen), full=False)
            times.append(t)
        if full_logits:
            full_need = peak + 2.0 * n * facts.vocab * es / MIB - meter.allocated_mb()
            if full_need < meter.free_mb() * FREE_HEADROOM:
                fpeak, _, _ = _run_once(torch, runner, meter, runner.ids(n, gen), full=True)
                point.full_logits_peak_mb = round(fpeak, 3)
            else:
                point.note = "full-logits forward skipped: would not fit"
    except Cancelled:
        raise
    except Exception as e:
        if not _is_oom(torch, e):
            raise ProbeError(f"{facts.label} at {n:,} tokens failed: {_one_line(e)}") from None
        _free(torch, meter)
        if point.peak_mb is None:
            point.status, point.note = "oom", f"out of memory at {n:,} tokens (memory freed)"
            return point, None, None
        point.note = "full-logits forward ran out of memory (memory freed)"
    timing = TimingPoint(context_tokens=n, ttft_ms=round(statistics.median(times), 3), repetitions=len(times),
                         rep0_ms=round(t0, 3)) if times else None
    return point, timing, kv_bytes


def _run_once(torch, runner, meter, ids, full: bool, want_cache: bool = False):
    """One prefill: (peak MiB, wall ms including the first token's argmax, KV-cache bytes)."""
    out = nxt = None
    try:
        meter.start()
        t0 = time.perf_counter()
        out, nxt = runner.prefill(ids, full_logits=full)
        meter.sync()
        ms = (time.perf_counter() - t0) * 1e3
        peak = meter.peak_mb()
        kvb = _cache_bytes(runner.cache_of(out)) if want_cache else None
        return peak, ms, kvb
    finally:
        del out, nxt, ids


def _batch_timings(torch, runner, meter, gen, ok, fit, base_mb, ctx) -> list[tuple[int, int, float]]:
    """Two batched prefills of 8 x the largest context in total tokens (see probes.fit.ttft_from_batches).

    Pairs tried in order, the first whose predicted peak fits: (8 x N, 2 x 4N), (16 x N/2, 8 x N).
    """
    if not ok:
        return []
    n = max(p.context_tokens for p in ok)
    for pair in (((8, n), (2, 4 * n)), ((16, n // 2), (8, n))):
        if any(c < 16 for _, c in pair):
            continue
        need = max(base_mb + b * (fit.predict(c) - base_mb) for b, c in pair)
        if need - meter.allocated_mb() > meter.free_mb() * FREE_HEADROOM:
            continue
        out = []
        try:
            for b, c in pair:
                ctx.report("ttft", f"throughput: {b} x {c:,} tokens", advance=False)
                _run_once(torch, runner, meter, runner.ids(c, gen, batch=b), full=False)  # warm-up for this shape
                times = [_run_once(torch, runner, meter, runner.ids(c, gen, batch=b), full=False)[1] for _ in range(2)]
                out.append((b, c, statistics.median(times)))
            return out
        except Cancelled:
            raise
        except Exception as e:
            if not _is_oom(torch, e):
                raise
            _free(torch, meter)
    return []


def _decode_tok_s(torch, runner, meter, gen, n: int, tokens: int) -> tuple[float | None, str]:
    """Decode tok/s the way generate() runs it: (N-1) / (t(N new tokens) - t(1 new token)), greedy."""
    try:
        ids = runner.ids(n, gen)
        mask = torch.ones_like(ids)

        def gen_time(k: int) -> float:
            meter.sync()
            t0 = time.perf_counter()
            runner.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=k,
                                  min_new_tokens=k, pad_token_id=0)
            meter.sync()
            return time.perf_counter() - t0

        gen_time(4)  # warm-up
        t1 = min(gen_time(1) for _ in range(2))
        tn = gen_time(tokens + 1)
        if tn > t1:
            return tokens / (tn - t1), "generate(): N / (t(N+1 new tokens) - t(1 new token))"
    except Exception as e:
        if _is_oom(torch, e):
            _free(torch, meter)
            return None, ""
    finally:
        _free(torch, meter)
    return _decode_loop(torch, runner, meter, gen, n, tokens), "loop of single-token forwards over the KV cache"


def _decode_loop(torch, runner, meter, gen, n: int, tokens: int) -> float | None:
    out = cache = tok = None
    try:
        out, tok = runner.prefill(runner.ids(n, gen), full_logits=False)
        cache = runner.cache_of(out)
        out = None
        for _ in range(4):  # warm-up steps
            out, tok = runner.step(tok, cache)
        meter.sync()
        t0 = time.perf_counter()
        for _ in range(tokens):
            out, tok = runner.step(tok, cache)
        meter.sync()
        dt = time.perf_counter() - t0
        return tokens / dt if dt > 0 else None
    except Exception as e:
        if _is_oom(torch, e):
            return None
        raise
    finally:
        del out, cache, tok
        _free(torch, meter)


def _free(torch, meter):
    gc.collect()
    meter.empty()


def fits_after(n_tokens: int, fit, free_mb: float) -> bool:
    return fit is not None and fit.predict(n_tokens) <= free_mb


def round_up(x: float, step: int) -> int:
    return int(math.ceil(x / step) * step)
