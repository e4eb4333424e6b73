"""`transformers serve --continuous-batching`: transformers' own continuous-batching manager and paged cache.

Memory: at the first request its paged cache takes --cb-max-memory-percent of the GPU memory
free after the weights load and holds it (sized here as transformers 5.24 sizes it). Scheduler:
continuous batching. Speed: its own coefficients, fitted on an H100 (one Python thread sets the
pace of a step: calibration.toml `transformers-serve.*`). Probes: an OpenAI-compatible probe that
met transformers serve. Export: the transformers exporter (advisor/engines/transformers.py)
writes its `transformers serve --continuous-batching` script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.domain import ModelSpec, Setting
from advisor.engines.base import Engine, Sizing, put
from advisor.physics import GIB


@dataclass(frozen=True)
class PoolGeometry:
    """transformers' paged cache for one GPU: pages of `page` tokens, and the tensors it allocates."""

    pages: int
    tokens: int
    page: int
    max_batch_tokens: int
    cache_bytes: int
    mask_bytes: int


class TransformersServe(Engine):
    """`transformers serve --continuous-batching`: the ContinuousBatchingManager's paged cache.

    At the first request the cache takes max_memory_percent of the GPU memory free after the weights
    load, less what it reserves per batch token and per cached token, and holds it; its size in
    tokens is transformers' own sizing (PagedAttentionMemoryHandler, 5.24), for SDPA attention: the
    attention masks and the K/V heads SDPA repeats are paid for out of the same budget."""

    kind = "transformers-serve"

    def _value(self, name: str) -> tuple[float, str]:
        """A constant of the engine: the row's own calibration prefix, else transformers serve's defaults."""
        key = f"{self.calibration.prefix}.{name}"
        if not self.k.has(key):
            key = f"{self.row.engine}.{name}"
        return self.k.value(key), f"{key} = {self.k.value(key):g} ({self.k.source(key)})"

    def max_batched_tokens(self) -> int:
        """--cb-max-batch-tokens: the tokens one step of the continuous-batching manager takes."""
        return int(self._value("max_batch_tokens")[0])

    def pool_geometry(self, model: ModelSpec, dtype_bytes: int, available_bytes: float) -> PoolGeometry:
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
        return PoolGeometry(pages=pages, tokens=pages * page, page=page, max_batch_tokens=m,
                            cache_bytes=int((pages + 2) * bytes_per_page), mask_bytes=int(b * m * (pages * page + m)))

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

    def kv_pool(self, model: ModelSpec, free_gb: float, base_gb: float, total_gb: float) -> tuple[int, str]:
        pct, src = self.memory_percent(base_gb, base_gb + free_gb, total_gb or base_gb + free_gb)
        g = self.pool_geometry(model, 2, max(free_gb, 0.0) * pct * GIB)
        return g.tokens, (f"transformers serve's paged cache: {pct:g} of the {free_gb:.1f} GB free after "
                          f"load ({src}), less its per-token reservations (SDPA), = {g.pages:,} pages of "
                          f"{g.page} tokens")

    def claim_gb(self, base_gb: float, usable_gb: float, total_gb: float) -> tuple[float, str]:
        pct, src = self.memory_percent(base_gb, usable_gb, total_gb or usable_gb)
        return base_gb + pct * max(usable_gb - base_gb, 0.0), (
            f"weights + runtime {base_gb:.1f} GB + {pct:g} of the {usable_gb - base_gb:.1f} GB free after "
            f"load ({src}): its cache, masks and per-step tensors (the H100 runs held 87-101 % of it, "
            f"bench/results/transformers-serve-h100.md)")

    def _engine_settings(self, out: dict[str, Setting], s: Sizing) -> None:
        k = self.k
        put(out, "continuous_batching", True, "backend.continuous-batching", self.row.source)
        pct, pct_src = self.memory_percent(s.base_gb, s.usable_gb, s.total_gb)
        put(out, "cb_max_memory_percent", pct, "context.kv-pool", pct_src)
        mbt, mbt_src = self._value("max_batch_tokens")
        put(out, "cb_max_batch_tokens", int(mbt), "context.kv-pool", mbt_src)
        put(out, "attn_implementation", "sdpa", "context.attention",
            "the attention the H100 calibration ran (bench/results/transformers-serve-h100.md); with "
            "flash-attn installed transformers switches to it for continuous batching (auto_switch_to_flash)")
        put(out, "compile", "off", "backend.compile-policy", k.source("compile_prefill_speedup_min")
            + " (never compile decode; transformers serve's --compile compiles the decode step)")
        put(out, "max_num_seqs", s.seqs, self.seqs_rule(s), self.seqs_source(
            s, "answers: concurrency (sequences in flight; transformers serve has no cap of its own)"))
        if s.pool_tokens:
            put(out, "kv_pool_tokens", int(s.pool_tokens), "context.kv-pool", s.pool_source)
