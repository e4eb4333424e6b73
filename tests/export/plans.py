"""Hand-built recommendations for the exporter tests: the shapes the engine produces, values fixed here."""

from __future__ import annotations

from advisor.domain import Plan, Predicted, Recommendation, RuleFiring, Setting

HEAD_RULES = {
    "backend": "backend.crossover", "quantization": "quantization.workload-default", "model": "quality.pass",
    "max_context_tokens": "context.budget", "concurrency": "scaling.concurrency",
    "replicas": "scaling.replicas", "tensor_parallel": "scaling.tensor-parallel",
}
SOURCES = {
    "backend.crossover": "Appendix F.2 (crossover at N>=4)",
    "quantization.workload-default": "Appendix F (recommended quantization per workload)",
    "quality.pass": "Appendix P.2 (quality gates)",
    "context.budget": "TR127 §14.3 (0.8 factor)",
    "scaling.concurrency": "answers: concurrency",
    "scaling.replicas": "batch volume / deadline",
    "scaling.tensor-parallel": "weights do not fit one GPU",
}


def S(value, rule="test.rule", source="test source"):
    return Setting(value=value, rule=rule, source=source)


def rec(backend, quant, *, model="llama3.1-8b", ctx=8192, n=1, replicas=1, tp=1, settings=None, **extra) -> Recommendation:
    plan = Plan(
        backend=backend, quantization=quant, model=model, max_context_tokens=ctx, concurrency=n,
        replicas=replicas, tensor_parallel=tp,
        predicted=Predicted(vram_gb=10.0, ttft_ms=100.0, decode_tok_s_per_user=50.0, total_tok_s=50.0 * n),
        set_by=dict(HEAD_RULES), settings=dict(settings or {}),
    )
    fired = [RuleFiring(rule=r, source=s, because="test") for r, s in SOURCES.items()]
    return Recommendation(recommendation=plan, rules_fired=fired, **extra)


def ollama_chat_n1(tag="llama3.2:3b", local_path=None):
    """N=1 chat on a 12 GB laptop GPU: Ollama, Q4_K_M."""
    s = {"hf_repo": S("meta-llama/Llama-3.2-3B-Instruct", "model.catalog", "catalog"),
         "num_ctx": S(32768, "context.budget", "TR127 §14.3"), "num_parallel": S(1, "scaling.concurrency", "answers"),
         "flash_attention": S(True, "context.flash-attention", "DESIGN"), "kv_cache_type": S("q8_0", "context.kv-cache-type", "K"),
         "temperature": S(0.7, "task.temperature", "Appendix F"), "dtype": S("float16", "quantization.choice", "P.1")}
    if tag is not None:
        s["ollama_tag"] = S(tag, "model.catalog", "catalog")
    if local_path is not None:
        s["local_path"] = S(local_path, "model.answers", "answers: model.name")
    return rec("ollama", "q4_k_m", model="llama3.2-3b", ctx=32768, n=1, settings=s)


def llamacpp_n4(local_path="/models/llama-3.2-3b-Q5_K_M.gguf"):
    s = {"num_ctx": S(16384, "context.budget", "TR127"), "num_parallel": S(4, "scaling.concurrency", "answers"),
         "ctx_size_total": S(65536, "context.budget", "TR127; split across slots"),
         "gpu_layers": S(999, "context.weights-fit", "weights fit"), "flash_attention": S(True, "context.flash-attention", "D"),
         "kv_cache_type": S("f16", "context.kv-cache-type", "K"), "local_path": S(local_path, "model.answers", "answers")}
    return rec("llamacpp", "q5_k_m", model="llama3.2-3b", ctx=16384, n=4, settings=s)


def vllm_n8(repo="meta-llama/Llama-3.1-8B-Instruct", quant="fp16", **kw):
    """N=8 RAG on one H100: vLLM at fp16."""
    s = {"hf_repo": S(repo, "model.catalog", "catalog"), "dtype": S({"fp16": "float16", "bf16": "bfloat16"}.get(quant, "auto"), "quantization.choice", "P.1"),
         "max_model_len": S(52873, "context.budget", "TR127 §14.3"), "max_num_seqs": S(8, "scaling.concurrency", "answers"),
         "gpu_memory_utilization": S(0.9, "context.gpu-memory-utilization", "vLLM default")}
    s.update(kw.pop("settings", {}))
    return rec("vllm", quant, ctx=52873, n=8, settings=s, **kw)


def vllm_tp2():
    """A 70B-class model on two 80 GB GPUs: tensor parallel 2."""
    s = {"hf_repo": S("meta-llama/Llama-3.1-70B-Instruct", "model.catalog", "catalog"), "dtype": S("bfloat16", "quantization.choice", "P.1"),
         "max_model_len": S(16384, "context.budget", "TR127"), "max_num_seqs": S(4, "scaling.concurrency", "answers"),
         "gpu_memory_utilization": S(0.92, "context.gpu-memory-utilization", "vLLM")}
    return rec("vllm", "bf16", model="llama3.1-70b", ctx=16384, n=4, tp=2, settings=s)


def tgi_batch_3_replicas():
    """Batch summarization over 3 GPUs: 3 TGI replicas at fp16."""
    s = {"hf_repo": S("Qwen/Qwen2.5-7B-Instruct", "model.catalog", "catalog"), "dtype": S("float16", "quantization.choice", "P.1"),
         "max_model_len": S(8192, "context.budget", "TR127"), "max_input_tokens": S(7936, "context.budget", "TR127"),
         "max_num_seqs": S(16, "scaling.concurrency", "answers"),
         "gpu_memory_utilization": S(0.85, "context.gpu-memory-utilization", "capped")}
    return rec("tgi", "fp16", model="qwen2.5-7b", ctx=8192, n=16, replicas=3, settings=s)


def transformers_compiled(model_dir="/models/qwen", attn="sdpa", compile="prefill-only", quant="fp16"):
    s = {"local_path": S(model_dir, "model.answers", "answers: model.name"), "dtype": S("float16", "quantization.choice", "P.1"),
         "attn_implementation": S(attn, "context.attention", "DESIGN: SDPA"), "compile": S(compile, "backend.compile-policy", "Linux only"),
         "continuous_batching": S(False, "backend.batching", "one request at a time"),
         "max_num_seqs": S(1, "scaling.concurrency", "answers")}
    return rec("transformers-compiled", quant, model="qwen", ctx=200, n=1, settings=s)


def transformers_serve_n16(repo="Qwen/Qwen2.5-1.5B-Instruct", local_path=None, replicas=1):
    """16 chat users on one H100: transformers serve with continuous batching, its paged pool sized by the plan."""
    s = {"hf_repo": S(repo, "model.catalog", "catalog"), "dtype": S("bfloat16", "quantization.native-dtype", "ships in bf16"),
         "continuous_batching": S(True, "backend.continuous-batching", "transformers serve --continuous-batching"),
         "cb_max_memory_percent": S(0.9, "context.kv-pool", "transformers 5.24 default"),
         "cb_max_batch_tokens": S(8192, "context.kv-pool", "transformers 5.24 default"),
         "attn_implementation": S("sdpa", "context.attention", "the H100 calibration"),
         "compile": S("off", "backend.compile-policy", "TR126"), "max_num_seqs": S(16, "scaling.concurrency", "answers"),
         "kv_pool_tokens": S(1414400, "context.kv-pool", "transformers serve's paged cache")}
    if local_path is not None:
        s["local_path"] = S(local_path, "model.answers", "answers: model.name")
    return rec("transformers-serve", "bf16", model="qwen2.5-1.5b", ctx=22100, n=16, replicas=replicas, settings=s)
