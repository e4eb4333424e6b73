"""Backend knobs for the chosen plan, each with the rule that set it.

These are the values the exporters paste verbatim (Plan.settings); deciding them
here keeps the exporters free of advice.
"""

from __future__ import annotations

import math

from advisor.domain import Answers, Setting
from advisor.predict import Estimate

DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


def plan_settings(k, answers: Answers, est: Estimate, max_ctx: int) -> dict[str, Setting]:
    model, backend, n = est.model, est.backend, answers.concurrency
    budget_src = k.source("context_safety_margin")
    out: dict[str, Setting] = {}

    def put(key: str, value, rule: str, source: str) -> None:
        out[key] = Setting(value=value, rule=rule, source=source)

    if model.hf_repo:
        put("hf_repo", model.hf_repo, "model.catalog", model.source)
    if model.ollama_tag:
        put("ollama_tag", model.ollama_tag, "model.catalog", model.source)
    if model.origin != "catalog":
        put("local_path", answers.model.name, "model.answers", "answers: model.name")
    put("dtype", DTYPES.get(est.quant, "auto" if est.quant in ("awq", "gptq", "fp8") else "float16"),
        "quantization.choice", k.quant[est.quant].source)

    if backend in ("ollama", "llamacpp"):
        put("num_ctx", max_ctx, "context.budget", budget_src)
        put("num_parallel", n, "scaling.concurrency", "answers: concurrency")
        put("flash_attention", True, "context.flash-attention",
            "flash attention keeps attention memory linear in context (DESIGN: SDPA/flash vs eager)")
        put("kv_cache_type", "f16", "context.kv-cache-type",
            "the budget assumes a 16-bit KV cache (2 x layers x kv_heads x head_dim x 2 B)")
        if backend == "llamacpp":
            put("ctx_size_total", max_ctx * n, "context.budget",
                budget_src + "; llama.cpp splits -c across its --parallel slots")
            put("gpu_layers", 999, "context.weights-fit", "weights fit in VRAM: offload every layer")
    if backend in ("vllm", "tgi"):
        put("max_model_len", max_ctx, "context.budget", budget_src)
        put("max_num_seqs", n, "scaling.concurrency", "answers: concurrency")
        util = k.value("vllm.gpu_memory_utilization")
        free_frac = est.usable_gb / est.total_gb
        if free_frac < util:  # vLLM refuses to start if it cannot claim this fraction
            util = math.floor(free_frac * 100 - 1) / 100
        put("gpu_memory_utilization", util, "context.gpu-memory-utilization",
            k.source("vllm.gpu_memory_utilization") + "; capped by what other tenants leave free")
        if backend == "tgi":
            put("max_input_tokens", max(max_ctx - answers.output_tokens, 1), "context.budget", budget_src)
    if backend.startswith("transformers"):
        put("attn_implementation", "sdpa", "context.attention",
            "DESIGN: SDPA keeps peak memory linear in context; eager is quadratic")
        compiled = backend == "transformers-compiled"
        put("compile", "prefill-only" if compiled else "off", "backend.compile-policy",
            k.source("compile_prefill_speedup_min") + " (Linux only, never for decode)")
        if compiled:  # the compiled prefill graph is specialised to one prompt's shape; requests take turns
            put("max_num_seqs", 1, "backend.compile-policy",
                k.source("compile_prefill_speedup_min") + "; one prompt per compiled prefill, requests take turns "
                "(the plan's per-user rate assumes it)")
        else:
            put("max_num_seqs", n, "scaling.concurrency", "answers: concurrency")
    return out

