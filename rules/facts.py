"""The facts the rules reason over: typed, frozen, one definition each.

A candidate fact carries the numbers (from advisor/predict.py), the knowledge look-ups
(what the tables say of this model, quantization and backend) and the user's targets;
it carries no verdicts. Whether the weights fit, whether the context is over budget,
whether FP16 fits with the margin: those comparisons are the rules' (rules/*.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class CandidateFact(BaseModel):
    """One deployment candidate (model x backend x quantization) as the rules see it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["cand", "plan"] = "cand"
    id: str
    # the candidate
    model: str
    params_b: float
    origin: str
    backend: str
    quant: str
    q_bits: float
    # the backend object's behaviour (advisor/backends.py), never its name
    batching: str  # continuous | slots | sequential
    continuous: int
    pages_kv: int
    compiled_prefill: int
    prefill_activations: int
    # knowledge look-ups: what the tables say of this combination
    q_risk_ok: int  # the risk tier allows this quantization (P.1)
    q_backend_ok: int  # the backend serves this quantization
    q_min_cc: float  # the compute capability its kernels need (-1: any)
    gpu_cc: float  # this GPU's compute capability (-1: unknown)
    os_ok: int  # the backend runs on this OS
    in_compat: int  # P.3 validated this quantization for this model
    compat_fail: int  # P.3 found this quantization failing for this model
    pref_backend: str  # Appendix F's backend for this workload and concurrency
    pref_quant: str
    phase: str  # the workload's dominant phase
    mmlu: float
    eff_mmlu: float
    gate_min: float
    gate_name: str
    max_context: int
    # the user's ask
    risk: str
    workload: str
    n: int
    os: str
    context: int  # prompt + output per sequence
    output: int
    slo_ttft: float
    slo_p95: float
    slo_decode: float
    requests_per_day: int
    deadline_hours: float
    tied: int = 0  # the user tied backend or quantization (constraints)
    constraints: str = ""  # the ties, as "backend=vllm, quantization=fp16"
    # the numbers
    need_gb: float  # weights + fixed overhead per GPU
    weights_gb: float
    usable_gb: float  # per GPU after other tenants
    fp16_gb: float  # the model's FP16 weights
    fp16_need_gb: float  # per GPU, this deployment at 16 bits (weights + overhead + KV for the ask)
    q8_need_gb: float  # the same at 8 bits
    usable_all_gb: float  # usable on every GPU together
    tp: int
    gpus: int
    budget: int  # safe context tokens per sequence
    budget_one: int  # safe context of one sequence alone (a paged pool's longest request)
    pool_tokens: int = 0  # the engine's own KV pool, all sequences together (0: the advisor's margin sizes it)
    attn_n2_mb: float  # MB per token^2 of attention score matrices the budget assumes (0: a linear kernel)
    stored_bound: int  # a stored measurement's safe budget for this very setup (-1: none)
    vram_frac: float
    ttft_n_ms: float  # p95 TTFT under the described load (steady state)
    p95_s: float  # p95 end to end
    decode_pu: float
    # the optimistic ends of the bands (calibration residuals, else assumed): a target missed
    # even there fails its gate; one missed only by the central figure is "at risk"
    ttft_lo_ms: float
    p95_lo_s: float
    decode_hi: float
    band_pct: int  # the prefill band, for the reason's words
    mode: str  # concurrent | rate | batch
    burst_ttft_ms: float  # the last of N prompts arriving together, shown apart
    capacity_rps: float
    total: float
    amdahl: float
    replicas_needed: int
    replicas_possible: int

    def as_plan(self, constraints: str) -> "CandidateFact":
        return self.model_copy(update={"kind": "plan", "id": "plan", "tied": int(bool(constraints)),
                                       "constraints": constraints})
