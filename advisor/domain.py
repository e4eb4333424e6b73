"""Domain types shared by every layer: answers, hardware, probes, recommendation.

Defined once here; the CLI, the TUI, the rules, the probes and the exporters all
speak these. Nothing here imports torch, transformers or Textual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

Workload = Literal["rag", "summarization", "chat", "balanced", "codegen", "classification"]
Risk = Literal["high", "moderate", "low"]
OS = Literal["linux", "windows"]
Quantization = Literal["fp16", "bf16", "fp8", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_s", "q2_k",
                       "awq", "gptq", "int8", "nf4"]
Origin = Literal["probe", "knowledge", "roofline", "aiconfigurator", "answers"]
WORKLOADS: tuple[str, ...] = get_args(Workload)
RISKS: tuple[str, ...] = get_args(Risk)
OSES: tuple[str, ...] = get_args(OS)
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)

# Keys of Plan.settings (each optional; exporters render what is present):
SETTING_KEYS = {
    "hf_repo": "Hugging Face repo id of the model ('' when not known)",
    "ollama_tag": "Ollama tag of the model, including the quantization suffix when known",
    "local_path": "local HF directory or GGUF file the user pointed at",
    "dtype": "torch / server dtype: float16 | bfloat16 | auto",
    "max_num_seqs": "max concurrent sequences per replica (vLLM --max-num-seqs, TGI, llama.cpp slots)",
    "gpu_memory_utilization": "vLLM fraction of GPU memory it may claim",
    "num_parallel": "Ollama OLLAMA_NUM_PARALLEL / llama.cpp --parallel",
    "num_ctx": "context per sequence for Ollama/llama.cpp (Ollama reserves num_ctx x num_parallel at load)",
    "ctx_size_total": "llama.cpp -c: total context shared by all --parallel slots (num_ctx x num_parallel)",
    "max_model_len": "vLLM --max-model-len / TGI --max-total-tokens: context + output per sequence",
    "max_input_tokens": "TGI --max-input-tokens: the longest prompt per sequence",
    "flash_attention": "bool: enable flash attention (Ollama OLLAMA_FLASH_ATTENTION, llama.cpp -fa)",
    "kv_cache_type": "KV cache element type: f16 | q8_0 | q4_0 (Ollama OLLAMA_KV_CACHE_TYPE, llama.cpp -ctk/-ctv)",
    "gpu_layers": "layers offloaded to the GPU (llama.cpp -ngl); 999 = all",
    "attn_implementation": "transformers attn_implementation: sdpa | eager | flash_attention_2",
    "compile": "transformers torch.compile policy: 'prefill-only' | 'off'",
    "continuous_batching": "bool: transformers serve --continuous-batching (paged cache, sequences share each step)",
    "cb_max_memory_percent": "transformers serve --cb-max-memory-percent: share of the free memory after load for the KV pool",
    "cb_max_batch_tokens": "transformers serve --cb-max-batch-tokens: tokens per step (a longer prompt is chunked)",
    "kv_pool_tokens": "tokens the engine's KV pool holds, all sequences together (informational)",
    "temperature": "sampling temperature for the task (Modelfile PARAMETER)",
}



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- answers

# Each answer field is defined once, here: its type and bounds (pydantic) and how it is asked
# (Ask: label, unit, help, CLI flag, TUI widget and page). advisor.fields turns these into the CLI
# flags of `recommend` and `export`, the TOML keys, the TUI's inputs and every validation message.
# Strict: a TOML `true` is not the number 1, 8.0 is not a whole number; no inf or nan anywhere.
@dataclass(frozen=True)
class Ask:
    """How an answer field is asked: its words and its place, beside its type on the model."""

    label: str
    help: str
    unit: str = ""
    flag: str = ""      # the CLI flag without "--" (default: the field name, _ as -)
    widget: str = ""    # number | choice | text | gpu | model (default: from the type)
    page: str = ""      # where the TUI asks it: hardware | workload | risk | load | model
    empty: str = "any"  # what "" means for a choice field that allows it ('(or "" for any)')


_ANSWERS_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class HardwareAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    gpu: Annotated[str, Field(min_length=1, max_length=200),
                   Ask("GPU", 'catalog GPU name, or "auto" to detect this machine\'s with NVML',
                       widget="gpu", page="hardware")] = "auto"
    gpus: Annotated[int | None, Field(ge=1, le=64),
                    Ask("GPUs", "GPUs to plan for (empty: all detected, or 1 catalog GPU)",
                        page="hardware")] = None
    vram_gb: Annotated[float | None, Field(ge=1, le=2048),
                       Ask("VRAM", "VRAM per GPU (empty: the catalog's or NVML's)", unit="GB",
                           page="hardware")] = None
    background_vram_gb: Annotated[float, Field(ge=0, le=2048),
                                  Ask("other tenants", "VRAM used by the desktop or other tenants",
                                      unit="GB", page="hardware")] = 0.0
    os: Annotated[OS, Ask("OS", "the server's OS (the spill-over cliff depends on it)",
                          widget="choice", page="hardware")] = "linux"


class ModelAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    name: Annotated[str, Field(max_length=4096),
                    Ask("model", "catalog id, HF folder, GGUF file or Ollama tag (empty: advisor picks)",
                        flag="model", widget="model", page="model")] = ""


class SLOAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    ttft_ms: Annotated[float | None, Field(ge=1, le=3_600_000),
                       Ask("TTFT target", "p95 time to first token (empty: the workload's)", unit="ms",
                           page="load")] = None
    p95_latency_s: Annotated[float | None, Field(ge=0.01, le=86_400),
                             Ask("p95 latency", "whole answer, 95th percentile (empty: the workload's)",
                                 unit="s", page="load")] = None
    min_decode_tok_s: Annotated[float, Field(ge=0, le=100_000),
                                Ask("min decode", "per user, 0 = any", unit="tok/s", page="load")] = 0.0
    # which targets were filled from the workload's defaults (the user left them blank): not part of
    # the answers a user saves; set by advisor/recommend.py, kept by model_copy
    _defaulted: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @property
    def defaulted(self) -> frozenset[str]:
        return self._defaulted


class ConstraintAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    # any backend the knowledge has (the bundled ones and the user's own rows): checked by name
    backend: Annotated[str, Field(max_length=64),
                       Ask("backend", "a backend you are tied to (empty: any)",
                           widget="backend", page="model")] = ""
    quantization: Annotated[Literal["", Quantization],
                            Ask("quantization", "a quantization you are tied to (empty: any)",
                                widget="choice", page="model")] = ""


class Answers(BaseModel):
    """What the user told us (questionnaire, TOML file or flags)."""

    model_config = _ANSWERS_CONFIG

    workload: Annotated[Workload, Ask("workload", "what the model mostly does (Appendix F)",
                                      widget="choice", page="workload")] = "chat"
    risk: Annotated[Risk, Ask("risk tier", "how bad a wrong answer is (Appendix P.1)",
                              widget="choice", page="risk")] = "moderate"
    concurrency: Annotated[int, Field(ge=1, le=4096),
                           Ask("concurrency", "simultaneous requests", page="load")] = 1
    # concurrency N is a closed loop: each user sends the next request think_time_s after the
    # last answer ended (0: agents back to back, as TR129/TR130 measured)
    think_time_s: Annotated[float, Field(ge=0, le=86_400),
                            Ask("think time", "each user's pause before the next request, 0 = back to back",
                                unit="s", page="load")] = 0.0
    context_tokens: Annotated[int, Field(ge=1, le=2_000_000),
                              Ask("context", "typical prompt + history", unit="tokens", page="load")] = 4096
    output_tokens: Annotated[int | None, Field(ge=1, le=1_000_000),
                             Ask("output", "typical answer length (empty: the workload's)", unit="tokens",
                                 page="load")] = None
    arrival_rate_rps: Annotated[float, Field(ge=0, le=1_000_000),
                                Ask("arrival rate", "requests per second arriving, 0 = use concurrency",
                                    unit="req/s", page="load")] = 0.0
    requests_per_day: Annotated[int, Field(ge=0, le=1_000_000_000),
                                Ask("requests / day", "batch volume, 0 = not a batch job",
                                    page="load")] = 0
    deadline_hours: Annotated[float, Field(ge=0, le=8760),
                              Ask("deadline", "batch window, 0 = none", unit="hours", page="load")] = 0.0
    # what serves the model today ("" = nothing yet): the bundled backends (knowledge/backends.toml),
    # or "other"; playbook H.1 (moving off Ollama) is for the users on Ollama
    current_backend: Annotated[Literal["", "ollama", "llamacpp", "vllm", "tgi", "transformers",
                                       "transformers-compiled", "transformers-serve", "other"],
                               Ask("serving today", "what serves your model now (empty: nothing yet)",
                                   widget="choice", page="model", empty="nothing yet")] = ""
    hardware: HardwareAnswers = HardwareAnswers()
    model: ModelAnswers = ModelAnswers()
    slo: SLOAnswers = SLOAnswers()
    constraints: ConstraintAnswers = ConstraintAnswers()


# ---------------------------------------------------------------- knowledge rows
class GpuSpec(_Strict):
    name: str
    aliases: list[str] = []
    vram_gb: float = Field(gt=0)
    bandwidth_gb_s: float = Field(gt=0)
    fp16_tflops: float = Field(gt=0)
    int8_tops: float | None = Field(default=None, gt=0)
    # FP16 with FP32 accumulate: the math PyTorch, vLLM and TGI run. GeForce parts run it at
    # half their FP16-accumulate rate (fp16_tflops); datacenter parts at the same rate.
    fp16_acc32_tflops: float | None = Field(default=None, gt=0)
    fp8_tflops: float | None = Field(default=None, gt=0)  # dense FP8 tensor (Ada, Hopper and later)
    compute_capability: float | None = Field(default=None, gt=0)  # e.g. 8.9 for Ada: decides FP8
    architecture: str = ""
    # NVIDIA aiconfigurator's name for this part where it ships measured kernel tables
    # (h100_sxm, h200_sxm, a100_sxm, l40s, ...): advisor/aiconfigurator.py
    aiconfigurator_system: str = Field(default="", max_length=64, pattern=r"^[a-z0-9_]*$")
    source: str = Field(min_length=1)

    @property
    def peak_flops(self) -> float:
        return self.fp16_tflops * 1e12

    @property
    def acc32_flops(self) -> float:
        """The FP16/BF16 rate real serving kernels get (FP32 accumulate)."""
        return (self.fp16_acc32_tflops or self.fp16_tflops) * 1e12

    @property
    def peak_ops_any(self) -> float:
        """The most generous tensor peak (INT8 for quantized kernels)."""
        return max(self.fp16_tflops, self.int8_tops or 0.0) * 1e12


class ModelSpec(_Strict):
    """A model's architecture facts, from the catalog, a local config.json or a GGUF's metadata.

    Beyond a dense transformer with grouped-query attention it knows mixture-of-experts MLPs,
    multi-head latent attention (MLA) and sliding-window layers, so that the figures physics
    reads (advisor/physics.py) are right for each:

    - memory:   `params` (every parameter, all experts) and `weight_bytes` when the files say;
    - compute:  `non_embedding_params` (what each prompt token multiplies through: the active
                experts only);
    - decode:   `decode_read_params` (bytes read per decoded token: the active experts, the shared
                expert(s), attention, the dense layers and the LM head);
    - KV cache: `kv_bytes_for(context)` (one sequence: sliding layers capped at their window, MLA's
                compressed latent) and `kv_bytes_per_token()` (every layer: an upper bound).

    How physics should use them: a sequence of n tokens (prompt + output) holds kv_bytes_for(n),
    divided over tensor-parallel ranks by kv_split(tp); the longest context a byte budget allows is
    context_for_budget(budget, sequences, extra_bytes_per_token); a prefill's attention FLOPs are
    attention_flops(n); a decode step of a batch reads decode_step_read_params(batch) parameters.
    """

    id: str
    family: str
    hf_architecture: str
    hf_repo: str = ""
    ollama_tag: str = ""
    params_b: float = Field(gt=0)  # every parameter (all experts): what the weights occupy
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)  # MLA: the query/key head (qk_nope_head_dim + qk_rope_head_dim)
    intermediate_size: int = Field(gt=0)  # a dense layer's MLP width
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool
    max_context: int = Field(gt=0)
    rope_theta: float = 0.0
    dtype: str = ""  # the precision it ships in (config.json torch_dtype): bfloat16 | float16 | float32
    mmlu: float | None = None
    source: str = Field(min_length=1)
    # set when the model came from a local directory ("local") or a GGUF file ("gguf"), not the catalog
    origin: str = "catalog"
    # the files' own weights, where they were read (GGUF tensor table, safetensors headers): their
    # stored bytes and the quantization they were written at
    weight_bytes: float | None = Field(default=None, gt=0)
    file_quantization: str = ""
    # the MLP: gated (SwiGLU/GeGLU: gate, up, down) or plain (up, down: GPT-2, Phi-2)
    gated_mlp: bool = True
    # Mixture of experts (experts = 0: a dense model). Each MoE layer holds `experts` routed expert
    # MLPs of moe_intermediate_size (0: intermediate_size, as in Mixtral) and a router; every token
    # goes through `experts_active` of them plus the always-on shared expert(s), whose widths add up
    # to shared_intermediate_size. `dense_layers` keep a dense MLP of intermediate_size (DeepSeek's
    # first_k_dense_replace). Expert MLPs are gated like the dense ones (gated_mlp).
    experts: int = Field(default=0, ge=0)
    experts_active: int = Field(default=0, ge=0)
    moe_intermediate_size: int = Field(default=0, ge=0)
    shared_intermediate_size: int = Field(default=0, ge=0)
    dense_layers: int = Field(default=0, ge=0)
    # Multi-head latent attention (DeepSeek-V2/V3; kv_lora_rank = 0: ordinary attention). The cache
    # holds one compressed latent of kv_lora_rank plus one shared rope key of qk_rope_head_dim per
    # token and layer; queries go through a q_lora_rank bottleneck (0: a full-rank q_proj).
    kv_lora_rank: int = Field(default=0, ge=0)
    q_lora_rank: int = Field(default=0, ge=0)
    qk_rope_head_dim: int = Field(default=0, ge=0)
    qk_nope_head_dim: int = Field(default=0, ge=0)
    v_head_dim: int = Field(default=0, ge=0)
    # Sliding-window attention: `sliding_layers` of the layers attend to (and cache) only the last
    # `sliding_window` tokens; the others attend to the whole context (Gemma 2: every other layer,
    # Gemma 3: five in six, Mistral v0.1: all 32 at 4,096).
    sliding_window: int = Field(default=0, ge=0)
    sliding_layers: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.experts:
            if not 1 <= self.experts_active <= self.experts:
                raise ValueError(f"experts_active ({self.experts_active}) must be 1 to experts ({self.experts})")
            if self.dense_layers >= self.layers:
                raise ValueError(f"dense_layers ({self.dense_layers}) must be fewer than layers ({self.layers})")
        elif self.experts_active or self.moe_intermediate_size or self.shared_intermediate_size or self.dense_layers:
            raise ValueError("experts_active, moe_intermediate_size, shared_intermediate_size and dense_layers "
                             "describe a mixture of experts; set experts too")
        if self.kv_lora_rank and not (self.qk_rope_head_dim and self.qk_nope_head_dim and self.v_head_dim):
            raise ValueError("an MLA model (kv_lora_rank) needs qk_rope_head_dim, qk_nope_head_dim and v_head_dim")
        if not self.kv_lora_rank and (self.q_lora_rank or self.qk_rope_head_dim or self.qk_nope_head_dim
                                      or self.v_head_dim):
            raise ValueError("q_lora_rank, qk_rope_head_dim, qk_nope_head_dim and v_head_dim describe MLA; "
                             "set kv_lora_rank too")
        if self.sliding_layers > self.layers:
            raise ValueError(f"sliding_layers ({self.sliding_layers}) must not exceed layers ({self.layers})")
        if bool(self.sliding_layers) != bool(self.sliding_window):
            raise ValueError("sliding_window and sliding_layers go together (both 0 for no sliding window)")
        return self

    # ------------------------------------------------------------ parameters
    @property
    def params(self) -> float:
        """Every parameter, all experts included: what the weights occupy in memory."""
        return self.params_b * 1e9

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.experts else 0

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def expert_width(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    @property
    def expert_params(self) -> float:
        """One routed expert's MLP in one layer."""
        return float(self.mlp_matrices * self.hidden_size * self.expert_width) if self.experts else 0.0

    @property
    def inactive_params(self) -> float:
        """The routed experts a token does not go through: held in memory, neither computed nor read."""
        return self.moe_layers * (self.experts - self.experts_active) * self.expert_params

    @property
    def active_params(self) -> float:
        """Parameters one token goes through (a dense model: all of them); `params` is the total."""
        return max(self.params - self.inactive_params, 0.0)

    @property
    def embedding_params(self) -> float:
        """vocab x hidden: the token embedding (and the LM head when tied)."""
        return float(self.vocab_size * self.hidden_size)

    @property
    def non_embedding_params(self) -> float:
        """Parameters in the transformer blocks a token goes through (active experts only): what
        every prompt token multiplies through."""
        heads = 1 if self.tied_embeddings else 2
        return max(self.active_params - heads * self.embedding_params, 0.0)

    @property
    def decode_read_params(self) -> float:
        """Parameters read per decoded token: the active ones, but not an untied input embedding
        (a row lookup). A decode step of a batch reads more experts: decode_step_read_params."""
        return self.active_params - (0.0 if self.tied_embeddings else self.embedding_params)

    def experts_touched(self, batch: int = 1) -> float:
        """Routed experts per MoE layer that a decode step of `batch` sequences reads, expected under
        uniform routing: E x (1 - (1 - k/E)^batch); k at batch 1, all E for large batches."""
        if not self.experts:
            return 0.0
        e, k = self.experts, self.experts_active
        return e * (1.0 - (1.0 - k / e) ** max(int(batch), 1))

    def decode_step_read_params(self, batch: int = 1) -> float:
        """Parameters one decode step reads for `batch` sequences: the weights every token shares,
        once, plus every routed expert some token in the batch was sent to (a dense model: the same
        as decode_read_params whatever the batch)."""
        extra = self.moe_layers * self.expert_params * (self.experts_touched(batch) - self.experts_active)
        return self.decode_read_params + max(extra, 0.0)

    # ------------------------------------------------------------ the architecture's own count
    @property
    def attention_params_per_layer(self) -> float:
        """Projection weights of one attention block (q, k, v, o; MLA's low-rank down/up projections)."""
        h, n = self.hidden_size, self.attention_heads
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = (h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * n * qk) if self.q_lora_rank \
                else h * n * qk
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank \
                + self.kv_lora_rank * n * (self.qk_nope_head_dim + self.v_head_dim)
            return float(q + kv + n * self.v_head_dim * h)
        return float(h * n * self.head_dim * 2 + h * self.kv_heads * self.head_dim * 2)

    @property
    def mlp_params_per_layer(self) -> float:
        """A dense layer's MLP."""
        return float(self.mlp_matrices * self.hidden_size * self.intermediate_size)

    @property
    def moe_params_per_layer(self) -> float:
        """An MoE layer's MLP: every routed expert, the shared expert(s) and the router."""
        if not self.experts:
            return 0.0
        shared = self.mlp_matrices * self.hidden_size * self.shared_intermediate_size
        return self.experts * self.expert_params + shared + self.hidden_size * self.experts

    def architecture_params(self) -> float:
        """Parameters implied by the architecture fields (weights of the projections, MLPs, experts,
        embeddings and norms; biases and small per-head norms left out: well under 0.1 %). A local
        config.json's model is counted with it; the catalog's published counts are checked against it."""
        dense = self.layers - self.moe_layers
        blocks = self.layers * (self.attention_params_per_layer + 2 * self.hidden_size) \
            + dense * self.mlp_params_per_layer + self.moe_layers * self.moe_params_per_layer
        return blocks + self.hidden_size + self.embedding_params * (1 if self.tied_embeddings else 2)

    def attention_flops(self, tokens: int) -> float:
        """FLOPs of QK^T and AV for a causal prefill of `tokens`: 2 FLOPs x heads x (query/key +
        value head dims) per attended (query, key) pair; a full layer attends n^2/2 pairs, a sliding
        layer no more than its window per query (the same n^2 term physics.prefill_flops writes
        inline, 2 x layers x heads x head_dim x n^2, for a model without sliding layers or MLA)."""
        n = float(max(int(tokens), 0))
        d_qk = self.head_dim
        d_v = self.v_head_dim if self.is_mla else self.head_dim
        per_pair = 2.0 * self.attention_heads * (d_qk + d_v)
        full_pairs = n * n / 2
        w = float(self.sliding_window)
        sliding_pairs = full_pairs if n <= w else w * w / 2 + (n - w) * w
        return per_pair * (self.full_attention_layers * full_pairs + self.sliding_layers * sliding_pairs)

    # ------------------------------------------------------------ KV cache
    @property
    def full_attention_layers(self) -> int:
        return self.layers - self.sliding_layers

    def kv_bytes_per_layer_token(self, kv_dtype_bytes: float = 2.0) -> float:
        """One token's cache in one layer: K and V per KV head (2 x kv_heads x head_dim), or MLA's
        compressed latent and shared rope key (kv_lora_rank + qk_rope_head_dim), x bytes."""
        if self.is_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * kv_dtype_bytes
        return 2 * self.kv_heads * self.head_dim * kv_dtype_bytes

    def kv_bytes_for(self, context: int, kv_dtype_bytes: float = 2.0) -> float:
        """KV-cache bytes of one sequence of `context` tokens: the full-attention layers hold every
        token, the sliding layers at most their window. This is what a budget should multiply by
        the number of sequences (context = prompt + output)."""
        n = max(int(context), 0)
        per = self.kv_bytes_per_layer_token(kv_dtype_bytes)
        return per * (self.full_attention_layers * n + self.sliding_layers * min(n, self.sliding_window))

    def kv_split(self, tensor_parallel: int = 1) -> int:
        """How many ways tensor parallelism divides the KV cache: by KV head, so no more than kv_heads
        ways (vLLM replicates KV heads past that), and not at all for MLA, whose single latent every
        rank holds in full. Per-GPU KV = kv_bytes_for(n) / kv_split(tp)."""
        tp = max(int(tensor_parallel), 1)
        return 1 if self.is_mla else max(min(tp, self.kv_heads), 1)

    def context_for_budget(self, budget_bytes: float, sequences: int = 1, extra_bytes_per_token: float = 0.0,
                           kv_dtype_bytes: float = 2.0) -> int:
        """The longest context n with sequences x kv_bytes_for(n) + extra_bytes_per_token x n within
        budget_bytes (extra: e.g. one prompt's activations): the inverse of kv_bytes_for, exact for
        sliding layers (their KV stops growing at the window)."""
        if budget_bytes <= 0:
            return 0
        s = max(int(sequences), 1)
        per = self.kv_bytes_per_layer_token(kv_dtype_bytes) * s
        within = per * self.layers + extra_bytes_per_token  # every layer grows up to the window
        if not self.sliding_layers or budget_bytes <= within * self.sliding_window:
            return int(budget_bytes // within) if within > 0 else 2**31
        beyond = per * self.full_attention_layers + extra_bytes_per_token
        if beyond <= 0:
            return 2**31
        left = budget_bytes - within * self.sliding_window
        return int(self.sliding_window + left // beyond)

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0, context: int | None = None) -> float:
        """KV-cache bytes per token.

        context=None: every layer holds every token (layers x per-layer bytes), the figure for a
        context no longer than the sliding window and an upper bound beyond it; exact for models
        without sliding layers. context=n: the average over a sequence of n tokens,
        kv_bytes_for(n) / n, which falls towards the full-attention layers' share as n grows.
        """
        if context is None or context <= 0:
            return self.kv_bytes_per_layer_token(kv_dtype_bytes) * self.layers
        return self.kv_bytes_for(context, kv_dtype_bytes) / context


# ---------------------------------------------------------------- hardware
class GpuDevice(_Strict):
    index: int = 0
    name: str
    total_gb: float
    free_gb: float | None = None
    used_gb: float | None = None
    other_processes_gb: float | None = None
    driver: str = ""
    cuda: str = ""
    compute_capability: str = ""
    pcie: str = ""
    catalog_name: str | None = None  # matched catalog row


class Hardware(_Strict):
    """The GPUs we plan for: detected with NVML, or a catalog GPU named in the answers."""

    source: Literal["nvml", "catalog"]
    devices: list[GpuDevice]
    spec: GpuSpec  # catalog facts (bandwidth, FLOP/s) for the first device
    os: OS = "linux"
    note: str = ""

    @property
    def count(self) -> int:
        return len(self.devices)

    @property
    def vram_gb(self) -> float:
        return self.devices[0].total_gb

    @property
    def compute_capability(self) -> float | None:
        """NVML's reading of the card, else the catalog row's; None when neither says."""
        try:
            return float(self.devices[0].compute_capability)
        except (TypeError, ValueError):
            return self.spec.compute_capability


# ---------------------------------------------------------------- probes
class CurvePoint(_Strict):
    context_tokens: int
    peak_mb: float | None = None  # generate()-style prefill (last-token logits)
    full_logits_peak_mb: float | None = None  # plain forward, logits for every token
    predicted_mb: float | None = None
    status: Literal["ok", "skipped", "oom"] = "ok"
    note: str = ""


class CurveFit(_Strict):
    """peak_mb(n) = base_mb + linear_mb_per_token * n + quadratic_mb_per_token2 * n^2"""

    kind: Literal["linear", "quadratic"]
    base_mb: float
    linear_mb_per_token: float
    quadratic_mb_per_token2: float = 0.0

    def predict(self, n: float) -> float:
        return self.base_mb + self.linear_mb_per_token * n + self.quadratic_mb_per_token2 * n * n


class TimingPoint(_Strict):
    context_tokens: int
    ttft_ms: float
    repetitions: int
    rep0_ms: float | None = None


class ProbeProgress(_Strict):
    """One progress report from a running probe (for a progress bar and a live plot)."""

    step: str  # "load" | "curve" | "ttft" | "decode" | "ollama" | "openai" | "done"
    fraction: float = Field(ge=0, le=1)  # of the whole probe
    message: str = ""
    point: CurvePoint | None = None  # a new VRAM-curve point, for the live plot


class TtftFit(_Strict):
    """A probe's TTFT curve: t(n) = c + a n + b n^2 ("sum"), or max(c, a n + b n^2) ("max": short
    prompts launch-bound, from two batched prefills; probes/fit.py)."""

    model_config = ConfigDict(extra="allow")  # the fit's own diagnostics ride along
    c_ms: float = Field(ge=0, allow_inf_nan=False)
    a_ms_per_token: float = Field(ge=0, allow_inf_nan=False)
    b_ms_per_token2: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    form: Literal["sum", "max"] = "sum"

    def predict_ms(self, n: float) -> float:
        compute = self.a_ms_per_token * n + self.b_ms_per_token2 * n * n
        return max(self.c_ms, compute) if self.form == "max" else self.c_ms + compute


class ServerVram(_Strict):
    """GPU memory a probed server's process holds (NVML, per process), or why it was not measured."""

    model_config = ConfigDict(extra="allow")
    mib: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    method: str = ""
    why: str = ""


# keys an older probe result (a cache entry, a --probes file) kept in `extra`, now fields of their own
_LIFTED = ("server", "server_vram", "ttft_fit", "server_limits", "inter_token_ms_median")


class ProbeResult(_Strict):
    """What a probe measured on this machine; feeds recommend()."""

    backend: str  # the probe kind: transformers | ollama | openai
    model: str
    gpu: str = ""
    attention: str = ""
    dtype: str = ""
    versions: dict[str, str] = {}
    base_vram_mb: float | None = None
    curve: list[CurvePoint] = []
    fit: CurveFit | None = None
    kv_bytes_per_token: float | None = None
    ttft: list[TimingPoint] = []
    decode_tok_s: float | None = None
    max_model_len: int | None = None
    # an OpenAI-compatible server: which engine answered ('' when its endpoints don't say; then its
    # figures feed every engine of the probe kind), the memory its process holds, its limits
    server: str = ""
    server_vram: ServerVram | None = None
    server_limits: dict[str, Any] = {}
    inter_token_ms_median: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    ttft_fit: TtftFit | None = None  # the probe's fitted TTFT curve (transformers: batched prefills)
    warnings: list[str] = []
    measured_at: str = ""
    duration_s: float | None = None
    cached: bool = False
    extra: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _lift(cls, data: Any) -> Any:
        """Read older results (cache entries, --probes files) that kept these in `extra`."""
        if isinstance(data, dict) and isinstance(data.get("extra"), dict):
            extra = dict(data["extra"])
            lifted = {key: extra.pop(key) for key in _LIFTED if key in extra}
            if lifted:
                data = {**data, "extra": extra,
                        **{k: v for k, v in lifted.items() if v is not None and k not in data}}
        return data


# ---------------------------------------------------------------- recommendation
class Provenance(_Strict):
    origin: Origin
    source: str
    # True where no measurement of this engine checks the efficiency behind the figure (the wide
    # band.assumed): every output says so beside the figure
    assumed: bool = False


class LoadFigures(_Strict):
    """The load the predictions describe, and what one replica holds (advisor/load.py)."""

    mode: Literal["concurrent", "rate", "batch"]  # N users in flight | arrivals per second | offline batch
    sequences: int  # in flight at once (max_num_seqs / -np / OLLAMA_NUM_PARALLEL)
    rate_rps: float  # requests per second on one replica (concurrent: N / time in system)
    ttft_p95_ms: float | None  # steady state; None when the queue never drains (saturated)
    e2e_p95_s: float | None
    burst_last_ttft_ms: float  # if all N prompts arrived in the same instant: the last one's TTFT
    capacity_rps: float  # one replica saturated
    max_rate_rps: float | None = None  # the largest arrival rate one replica holds within the SLO (the load model's)
    steady: bool = True
    # users who pause between requests: the seconds each pauses, and how many requests are then
    # in flight on average (Little: rate x time in system); None for back-to-back users
    think_time_s: float | None = None
    in_flight: float | None = None
    # the load as the user gave it, beside one replica's share: N users (all replicas together), and
    # the in-flight count's high percentile that `sequences` follows (advisor/load/inflight.py)
    users: int | None = None
    in_flight_high: int | None = None
    # an offline batch: the volume, its deadline, and what the plan's replicas together complete
    batch_requests: int | None = None
    deadline_hours: float | None = None
    batch_hours: float | None = None  # the whole batch's completion time on the plan's replicas
    batch_requests_per_s: float | None = None  # all replicas together
    batch_tokens_per_s: float | None = None  # generated tokens per second, all replicas together


class Predicted(_Strict):
    vram_gb: float
    ttft_ms: float | None  # p95 time to first token under the described load (steady state; None: saturated)
    decode_tok_s_per_user: float
    total_tok_s: float
    p95_latency_s: float | None = None
    origins: dict[str, Provenance] = {}
    # relative uncertainty of each figure: calibration residuals, a probe's repeatability, or assumed
    bands: dict[str, float] = {}
    load: LoadFigures | None = None


class Setting(_Strict):
    """One deployment knob (num_ctx, gpu_memory_utilization, ...), with the rule that set it."""

    value: str | int | float | bool
    rule: str
    source: str


class Plan(_Strict):
    backend: str
    quantization: str
    model: str
    max_context_tokens: int
    concurrency: int
    replicas: int = 1
    tensor_parallel: int = 1
    predicted: Predicted
    lost_because: list[str] = []  # alternatives: why this did not win
    # which rule set each headline field (backend, quantization, model, max_context_tokens,
    # concurrency, replicas, tensor_parallel) -> rule name (its source is in rules_fired)
    set_by: dict[str, str] = {}
    # backend knobs the exporters render verbatim; keys listed in SETTING_KEYS
    settings: dict[str, Setting] = {}


class RuleFiring(_Strict):
    rule: str
    source: str
    because: str


class PlaybookRef(_Strict):
    id: str
    title: str


class HardwareSummary(_Strict):
    """The GPUs the plan is for, as the outputs show them."""

    source: Literal["nvml", "catalog"]
    gpu: str
    count: int
    vram_gb: float
    os: OS
    bandwidth_gb_s: float
    fp16_tflops: float
    catalog_source: str
    note: str = ""
    devices: list[GpuDevice] = []

    @classmethod
    def of(cls, hw: Hardware) -> HardwareSummary:
        return cls(source=hw.source, gpu=hw.spec.name, count=hw.count, vram_gb=hw.vram_gb, os=hw.os,
                   bandwidth_gb_s=hw.spec.bandwidth_gb_s, fp16_tflops=hw.spec.fp16_tflops,
                   catalog_source=hw.spec.source, note=hw.note, devices=list(hw.devices))


class ProbeSummary(_Strict):
    """The probe results a recommendation used (their VRAM curves stay in the probe's own output)."""

    results: list[ProbeResult] = []

    @classmethod
    def of(cls, probes: list[ProbeResult]) -> ProbeSummary | None:
        return cls(results=[p.model_copy(update={"curve": []}) for p in probes]) if probes else None


class Recommendation(_Strict):
    recommendation: Plan | None
    # one line on why there is no recommendation (empty when there is one)
    no_plan_because: str = ""
    alternatives: list[Plan] = []
    playbooks: list[PlaybookRef] = []
    rules_fired: list[RuleFiring] = []
    warnings: list[str] = []
    probes: ProbeSummary | None = None
    answers: Answers | None = None
    hardware: HardwareSummary | None = None
