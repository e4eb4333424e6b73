"""The pipeline's records, in the order the data flows (each frozen, each with its provenance).

  answers (advisor/domain.py Answers)      what the user said; with_workload_defaults fills the rest once
    -> Demand    (advisor/load/demand.py)  the load asked: N users, an arrival rate or a batch; targets
    -> Hardware  (advisor/domain.py)       the GPUs: NVML's, or a catalog GPU named in the answers
  for each candidate (model x engine x quantization):
    -> Memory    (advisor/memory.py)       weights, buffers, KV per token, the context budget
    -> Speed     (advisor/engines/base.py) step costs (tables, roofline or probe), bands, sources
    -> Replicas  (advisor/sizing.py)       replicas from the load model, decided once
    -> Load      (advisor/load/schedulers.py)  the one load model's figures on one replica
    -> Estimate  (here)                    all of the above for one candidate, with each figure's origin
    -> facts     (rules/facts.py)          what the rules reason over; rules -> Trace
  for the winner:
    -> Sizing    (advisor/engines/base.py) what the plan decided, which the engine's knobs follow
    -> Plan / Recommendation (advisor/domain.py)  what the renderers and exporters read
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from advisor.domain import Hardware, ModelSpec, Provenance
from advisor.engines import Engine, Sizing, Speed
from advisor.load import Demand, Load, Scheduler
from advisor.load.inflight import InFlight
from advisor.memory import Memory
from advisor.sizing import Replicas

__all__ = ["Demand", "Estimate", "Hardware", "Load", "Memory", "Replicas", "Sizing", "Speed"]


@dataclass(frozen=True)
class Estimate:
    """One candidate deployment on this hardware, with every figure the rules judge.

    The memory figures are per GPU at the sequences the load holds (`kv_seqs`); the load's are
    one replica's."""

    model: ModelSpec
    engine: Engine
    quant: str
    bits: float  # bits per weight of the quantization
    hardware: Hardware
    demand: Demand
    memory: Memory
    speed: Speed
    scheduler: Scheduler
    load: Load
    replicas: Replicas
    kv_seqs: int  # the sequences whose KV the budget reserves
    budget_tokens: int  # safe context per sequence at kv_seqs
    budget_one: int  # safe context of one sequence alone (a paged pool's longest request)
    need_gb: float  # per GPU, what the load needs
    vram_gb: float  # per GPU, what the engine holds (its claim, a probe's reading, else the need)
    vram_frac: float  # need / VRAM
    fp16_need_gb: float  # per GPU, this deployment (TP, context, load) at 16 bits
    q8_need_gb: float  # the same at 8 bits
    in_flight: InFlight | None = None  # the load's in-flight count: its mean and the percentile `kv_seqs` follows
    pool_seqs: int = 0  # sequences of the typical length the KV pool holds (the engine's ceiling applied)
    tp_weights: int = 1  # the tensor parallel the weights alone need (a larger one is for the load's KV)

    @functools.cached_property
    def origins(self) -> dict[str, Provenance]:
        """Where each predicted figure came from, with its source and whether its efficiency is
        assumed (worked out when a plan shows it: most candidates never are)."""
        s, load = self.speed, self.load
        pre_src = s.prefill_source if s.prefill_origin == "probe" else f"{s.prefill_origin}: {s.prefill_source}"
        dec_src = s.decode_source if s.decode_origin == "probe" else f"{s.decode_origin}: {s.decode_source}"
        if self.scheduler.note:
            dec_src += f"; {self.scheduler.note}"
        return {
            "vram_gb": self.memory.provenance(self.need_gb),
            "ttft_ms": Provenance(origin=s.prefill_origin, source=f"{pre_src}; {load.ttft_how}; band "
                                                                  f"{s.prefill_band_source}", assumed=s.prefill_assumed),
            "decode_tok_s_per_user": Provenance(origin=s.decode_origin, source=f"{dec_src}; {load.per_user_how}; band "
                                                                               f"{s.decode_band_source}",
                                                assumed=s.decode_assumed),
            "total_tok_s": Provenance(origin=s.decode_origin, source=load.total_how, assumed=s.decode_assumed),
            "p95_latency_s": Provenance(origin=s.prefill_origin if s.prefill_origin == s.decode_origin else "roofline",
                                        source=load.e2e_how, assumed=s.prefill_assumed or s.decode_assumed),
        }

    @property
    def backend(self) -> str:
        return self.engine.name

    @property
    def tensor_parallel(self) -> int:
        return self.memory.tensor_parallel

    @property
    def ttft_band(self) -> float:
        return self.speed.prefill_band

    @property
    def decode_band(self) -> float:
        return self.speed.decode_band

    @property
    def p95_band(self) -> float:
        return max(self.speed.prefill_band, self.speed.decode_band)
