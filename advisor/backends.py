"""Serving backends as objects, each built from its row in knowledge/backends.toml.

Everything the advisor knows about how an engine behaves — how it batches, what memory it
holds besides weights and KV, whether it splits weights over GPUs, which probes feed it,
which exporter writes its config, and the knobs a plan sets for it — is answered here, by
the backend object, so no other module compares backend names. A user's own backend row
picks its behaviour by `engine` (the class) and the row's flags, not by its name.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from advisor.domain import Answers, Setting

if TYPE_CHECKING:  # pragma: no cover
    from advisor.domain import ModelSpec, ProbeResult
    from advisor.predict import Estimate

DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


class Backend:
    """The behaviour common to every engine; subclasses add their memory and their knobs."""

    def __init__(self, row, knowledge):
        self.row = row
        self.k = knowledge
        self.name: str = row.backend
        self.title: str = row.title

    # ------------------------------------------------------------ what it is
    @property
    def batching(self) -> str:
        """continuous | slots (parallel slots, then a queue; Amdahl per agent) | sequential."""
        return self.row.batching

    @property
    def continuous(self) -> bool:
        return self.batching == "continuous"

    @property
    def pages_kv(self) -> bool:
        return bool(self.row.pages_kv)

    @property
    def family(self) -> str:
        """Engines whose stored measurements and probes describe each other (ollama ~ llama.cpp)."""
        return self.row.family

    @property
    def export_target(self) -> str:
        return self.row.export_target

    @property
    def compiled_prefill(self) -> bool:
        return bool(self.row.compiled_prefill)

    @property
    def prefill_activations(self) -> bool:
        """Prefills the whole prompt at once and holds its activations (no chunked prefill)."""
        return bool(self.row.prefill_activations)

    @property
    def splits_tensor_parallel(self) -> bool:
        return bool(self.row.tensor_parallel)

    def calibration_key(self) -> str:
        """The prefix of this engine's efficiency rows in calibration.toml."""
        return self.row.calibration or self.name

    # ------------------------------------------------------------ memory
    def overhead_gb(self) -> tuple[float, str]:
        """Fixed memory besides the weights: the CUDA context, plus the engine's own buffers."""
        k = self.k
        gb = k.value("cuda_context_overhead_gb")
        src = f"cuda_context_overhead_gb ({k.source('cuda_context_overhead_gb')})"
        for key in self.row.overhead_keys:
            gb += k.value(key)
            src += f" + {key} ({k.source(key)})"
        return gb, src

    def kv_pool(self, model: "ModelSpec", quant: str, free_gb: float, base_gb: float = 0.0,
                total_gb: float = 0.0) -> tuple[int, str] | None:
        """Tokens the engine's own KV pool holds when `free_gb` is free after its weights and runtime
        (`base_gb`) load on a GPU of `total_gb`, and how that was worked out; None for an engine whose
        pool the advisor sizes itself (margin x free)."""
        return None

    def claim_gb(self, base_gb: float, usable_gb: float, total_gb: float = 0.0) -> tuple[float, str] | None:
        """GPU memory the engine takes whatever the load (its weights and runtime at `base_gb`, on a GPU
        with `usable_gb` usable of `total_gb`), and why; None for an engine whose memory grows with what it holds."""
        return None

    # ------------------------------------------------------------ probes
    def takes_probe(self, probe: "ProbeResult") -> bool:
        """A probe of one of its kinds; a server probe that says which server it met only when it met this one."""
        if probe.backend not in self.row.probe_kinds:
            return False
        server = (probe.extra or {}).get("server")
        return not isinstance(server, str) or not server or server == self.row.engine

    # ------------------------------------------------------------ the plan's knobs
    def settings(self, answers: Answers, est: "Estimate", max_ctx: int) -> dict[str, Setting]:
        """The knobs the exporters paste verbatim, each with the rule that set it."""
        out: dict[str, Setting] = {}
        model = est.model
        if model.hf_repo:
            _put(out, "hf_repo", model.hf_repo, "model.catalog", model.source)
        if model.ollama_tag:
            _put(out, "ollama_tag", model.ollama_tag, "model.catalog", model.source)
        if model.origin != "catalog":
            _put(out, "local_path", answers.model.name, "model.answers", "answers: model.name")
        _put(out, "dtype", *self._dtype(est))
        self._engine_settings(out, answers, est, max_ctx)
        return out

    def _engine_settings(self, out: dict, answers: Answers, est: "Estimate", max_ctx: int) -> None:
        pass

    def _dtype(self, est: "Estimate") -> tuple[str, str, str]:
        """(dtype, rule, source): a 16-bit plan runs in the precision the model ships in (bf16 for
        most current models) where the GPU has bf16 (compute capability 8.0+), else float16."""
        model, quant = est.model, est.quant
        if quant in ("awq", "gptq", "fp8"):
            return "auto", "quantization.choice", self.k.quant[quant].source
        if quant == "bf16" or (quant == "fp16" and model.dtype == "bfloat16" and est.bf16_ok):
            return "bfloat16", "quantization.native-dtype", f"{model.id} ships in {model.dtype or 'bfloat16'} ({model.source})"
        if quant == "fp16" and model.dtype == "bfloat16":
            return "float16", "quantization.native-dtype", (f"{model.id} ships in bfloat16, which this GPU lacks "
                                                           f"(compute capability < 8.0): float16")
        return DTYPES.get(quant, "float16"), "quantization.choice", self.k.quant[quant].source

    def _budget_source(self) -> str:
        return self.k.source("context_safety_margin")


def _put(out: dict, key: str, value, rule: str, source: str) -> None:
    out[key] = Setting(value=value, rule=rule, source=source)


class LlamaCppFamily(Backend):
    """GGUF engines: the KV cache for num_ctx x slots is reserved at load."""

    def _engine_settings(self, out, answers, est, max_ctx):
        _put(out, "num_ctx", max_ctx, "context.budget", self._budget_source())
        _put(out, "num_parallel", est.load.seqs, "scaling.concurrency",
             "offline batch: the throughput-optimal batch (advisor/load.py)" if est.load.mode == "batch"
             else "answers: concurrency")
        _put(out, "flash_attention", True, "context.flash-attention",
             "flash attention keeps attention memory linear in context (DESIGN: SDPA/flash vs eager)")
        _put(out, "kv_cache_type", "f16", "context.kv-cache-type",
             "the budget assumes a 16-bit KV cache (2 x layers x kv_heads x head_dim x 2 B)")


class Ollama(LlamaCppFamily):
    pass


class LlamaServer(LlamaCppFamily):
    def _engine_settings(self, out, answers, est, max_ctx):
        super()._engine_settings(out, answers, est, max_ctx)
        _put(out, "ctx_size_total", max_ctx * est.load.seqs, "context.budget",
             self._budget_source() + "; llama.cpp splits -c across its --parallel slots")
        _put(out, "gpu_layers", 999, "context.weights-fit", "weights fit in VRAM: offload every layer")


class PagedServer(Backend):
    """vLLM-style servers: claim a fraction of the GPU at start, page the KV cache on demand."""

    def _engine_settings(self, out, answers, est, max_ctx):
        k = self.k
        # --max-model-len is the longest single request the server accepts, not pool / N: the
        # workload's request with headroom, up to what the pool holds for one sequence.
        ask = answers.context_tokens + answers.output_tokens
        room = k.value("max_model_len_headroom")
        longest = min(max(int(math.ceil(ask * room / 256) * 256), ask), est.budget_one, est.model.max_context)
        _put(out, "max_model_len", max(longest, min(ask, est.model.max_context)), "context.max-model-len",
             f"the workload's {ask:,}-token request x {room:g} ({k.source('max_model_len_headroom')}), "
             f"at most one sequence's share of the KV pool ({est.budget_one:,}) and the model's {est.model.max_context:,}")
        _put(out, "max_num_seqs", est.load.seqs, "scaling.concurrency",
             "offline batch: the throughput-optimal batch (advisor/load.py)" if est.load.mode == "batch"
             else "answers: concurrency (sequences in flight; vLLM pages KV on demand)")
        util = k.value("vllm.gpu_memory_utilization")
        free_frac = est.usable_gb / est.total_gb
        if free_frac < util:  # the server refuses to start if it cannot claim this fraction
            util = math.floor(free_frac * 100 - 1) / 100
        _put(out, "gpu_memory_utilization", util, "context.gpu-memory-utilization",
             k.source("vllm.gpu_memory_utilization") + "; capped by what other tenants leave free")


class Vllm(PagedServer):
    pass


class Tgi(PagedServer):
    def _engine_settings(self, out, answers, est, max_ctx):
        super()._engine_settings(out, answers, est, max_ctx)
        _put(out, "max_input_tokens", max(max_ctx - answers.output_tokens, 1), "context.budget",
             self._budget_source())


class Transformers(Backend):
    """A transformers generate() loop, optionally with a compiled prefill: served by `transformers serve`
    without continuous batching, whose requests take turns through generate() on one thread."""

    def _engine_settings(self, out, answers, est, max_ctx):
        k = self.k
        _put(out, "attn_implementation", "sdpa", "context.attention",
             "DESIGN: SDPA keeps peak memory linear in context; eager is quadratic")
        compile_src = k.source("compile_prefill_speedup_min")
        _put(out, "compile", "prefill-only" if self.compiled_prefill else "off", "backend.compile-policy",
             compile_src + " (Linux only, never for decode)")
        _put(out, "continuous_batching", False, "backend.batching",
             "a generate() loop: one request at a time (the plan's sequential model); " + self.row.source)
        if self.compiled_prefill:  # the compiled prefill graph is specialised to one prompt's shape
            _put(out, "max_num_seqs", 1, "backend.compile-policy",
                 compile_src + "; one prompt per compiled prefill, requests take turns "
                 "(the plan's per-user rate assumes it)")
        else:
            _put(out, "max_num_seqs", 1, "backend.batching",
                 "transformers serve without --continuous-batching runs one generate() at a time; "
                 "the others wait (the plan's per-user rate assumes it)")


class TransformersServe(Backend):
    """`transformers serve --continuous-batching`: the ContinuousBatchingManager's paged cache.

    At the first request the cache takes max_memory_percent of the GPU memory free after the weights
    load, less what it reserves per batch token and per cached token, and holds it; its size in
    tokens is transformers' own sizing (PagedAttentionMemoryHandler, 5.24), for SDPA attention: the
    attention masks and the K/V heads SDPA repeats are paid for out of the same budget."""

    def _value(self, name: str) -> tuple[float, str]:
        """A constant of the engine: the row's own calibration prefix, else transformers serve's defaults."""
        key = f"{self.calibration_key()}.{name}"
        if not self.k.has(key):
            key = f"{self.row.engine}.{name}"
        return self.k.value(key), f"{key} = {self.k.value(key):g} ({self.k.source(key)})"

    def pool_geometry(self, model: "ModelSpec", dtype_bytes: int, available_bytes: float) -> dict:
        """transformers' sizing of the paged cache (PagedAttentionMemoryHandler, SDPA, full attention),
        for `available_bytes` = max_memory_percent x the free memory after load: the pages it holds,
        the bytes of the cache tensor and of the attention mask it allocates at the first request."""
        page = int(self._value("page_size")[0])
        m = int(self._value("max_batch_tokens")[0])
        rows = int(self._value("max_requests_per_batch")[0])
        b = dtype_bytes
        hd, heads, kv = model.head_dim, model.attention_heads, model.kv_heads
        kv_at_peak = 2 * heads + kv  # SDPA repeats K and V to the query heads while V is read
        bytes_per_page = model.layers * model.kv_bytes_per_layer_token(b) * page  # every layer, page tokens
        lm_row = model.hidden_size * b + model.vocab_size * 4  # fp32 logits of one kept row
        fixed = rows * lm_row + 2 * bytes_per_page  # logit rows of a full batch of requests, 2 trash pages
        per_batch_token = b * (model.hidden_size + heads * hd + 2 * kv * hd + kv_at_peak * hd) + 4 * 8 + 16
        per_cache_token = kv_at_peak * hd * b + 8
        per_page = bytes_per_page + page * per_cache_token
        pages = int((available_bytes - fixed - m * per_batch_token) // per_page)
        mask = b * m * (pages * page + m)  # one [M, readable + M] mask
        grow = b * m * page
        pages -= math.ceil(mask / (per_page + grow)) if pages > 0 else 0
        pages = max(pages, 0)
        return {"pages": pages, "tokens": pages * page, "page": page, "max_batch_tokens": m,
                "cache_bytes": (pages + 2) * bytes_per_page, "mask_bytes": b * m * (pages * page + m)}

    def memory_percent(self, base_gb: float, usable_gb: float, total_gb: float) -> tuple[float, str]:
        """--cb-max-memory-percent: transformers' default, lowered where the server's whole claim (weights,
        runtime and that share of the free memory) would pass the VRAM hard stop (H.2)."""
        pct, src = self._value("max_memory_percent")
        free = usable_gb - base_gb
        stop = self.k.value("vram_alert_hard_stop")
        if free > 0 and base_gb + pct * free > stop * total_gb:
            capped = max(math.floor((stop * total_gb - base_gb) / free * 100) / 100, 0.01)
            return capped, (f"{src}, lowered to {capped:g} so the server's claim stays under the "
                            f"{stop:.0%} hard stop ({self.k.source('vram_alert_hard_stop')})")
        return pct, src

    def kv_pool(self, model, quant, free_gb, base_gb: float = 0.0, total_gb: float = 0.0):
        from advisor.physics import GIB

        pct, src = self.memory_percent(base_gb, base_gb + free_gb, total_gb or base_gb + free_gb)
        g = self.pool_geometry(model, 2, max(free_gb, 0.0) * pct * GIB)
        return g["tokens"], (f"transformers serve's paged cache: {pct:g} of the {free_gb:.1f} GB free after "
                             f"load ({src}), less its per-token reservations (SDPA), = {g['pages']:,} pages of "
                             f"{g['page']} tokens")

    def claim_gb(self, base_gb, usable_gb, total_gb: float = 0.0):
        pct, src = self.memory_percent(base_gb, usable_gb, total_gb or usable_gb)
        return base_gb + pct * max(usable_gb - base_gb, 0.0), (
            f"weights + runtime {base_gb:.1f} GB + {pct:g} of the {usable_gb - base_gb:.1f} GB free after "
            f"load ({src}): its cache, masks and per-step tensors (the H100 runs held 87-101 % of it, "
            f"bench/results/transformers-serve-h100.md)")

    def _engine_settings(self, out, answers, est, max_ctx):
        k = self.k
        _put(out, "continuous_batching", True, "backend.continuous-batching", self.row.source)
        pct, pct_src = self.memory_percent(est.weights_gb + est.overhead_gb, est.usable_gb, est.total_gb)
        _put(out, "cb_max_memory_percent", pct, "context.kv-pool", pct_src)
        mbt, mbt_src = self._value("max_batch_tokens")
        _put(out, "cb_max_batch_tokens", int(mbt), "context.kv-pool", mbt_src)
        _put(out, "attn_implementation", "sdpa", "context.attention",
             "the attention the H100 calibration ran (bench/results/transformers-serve-h100.md); with "
             "flash-attn installed transformers switches to it for continuous batching (auto_switch_to_flash)")
        _put(out, "compile", "off", "backend.compile-policy", k.source("compile_prefill_speedup_min")
             + " (never compile decode; transformers serve's --compile compiles the decode step)")
        _put(out, "max_num_seqs", est.load.seqs, "scaling.concurrency",
             "offline batch: the throughput-optimal batch (advisor/load.py)" if est.load.mode == "batch"
             else "answers: concurrency (sequences in flight; transformers serve has no cap of its own)")
        if est.pool_tokens:
            _put(out, "kv_pool_tokens", int(est.pool_tokens), "context.kv-pool", est.pool_source)


# The engine a row names picks its class; a user's own row can reuse any of them.
ENGINES: dict[str, type[Backend]] = {
    "ollama": Ollama,
    "llama-server": LlamaServer,
    "vllm": Vllm,
    "tgi": Tgi,
    "transformers": Transformers,
    "transformers-serve": TransformersServe,
}

_BUILT: dict[int, tuple[object, dict[str, Backend]]] = {}


def backends(knowledge) -> dict[str, Backend]:
    """Every backend of this knowledge, built once per knowledge object (in the table's order)."""
    hit = _BUILT.get(id(knowledge))
    if hit is not None and hit[0] is knowledge:
        return hit[1]
    built = {name: ENGINES[row.engine](row, knowledge) for name, row in knowledge.backends.items()}
    _BUILT[id(knowledge)] = (knowledge, built)
    return built


def backend(knowledge, name: str) -> Backend:
    return backends(knowledge)[name]


def servable_quantizations(model: "ModelSpec", b: Backend) -> list[str]:
    """The quantizations this backend can serve this model at, given the form the model comes in.

    Catalog models are pulled in whatever form a backend wants. A GGUF file is served as it
    is by the engines that read GGUF; a local HF directory at its own precision by the
    HF-format backends, or imported by those that convert it themselves (Ollama's create)."""
    row = b.row
    if model.origin == "gguf":
        ok = row.serves_gguf and model.file_quantization in row.quantizations
        return [model.file_quantization] if ok else []
    if model.origin == "local":
        return [q for q in row.quantizations if q in row.local_hf_quantizations]
    return list(row.quantizations)
