"""The answer fields as CLI flags: light enough to import for `advisor --help`."""

from __future__ import annotations

# One table drives the CLI flags, the TOML keys and the questionnaire: (flag, dotted field, type, help)
FIELDS: list[tuple[str, str, type, str]] = [
    ("workload", "workload", str, "rag | summarization | chat | balanced | codegen | classification"),
    ("risk", "risk", str, "high | moderate | low"),
    ("concurrency", "concurrency", int, "simultaneous requests"),
    ("context-tokens", "context_tokens", int, "typical prompt (+history) length in tokens"),
    ("output-tokens", "output_tokens", int, "typical output length in tokens"),
    ("requests-per-day", "requests_per_day", int, "batch volume, for throughput sizing"),
    ("deadline-hours", "deadline_hours", float, "batch window in hours"),
    ("gpu", "hardware.gpu", str, 'catalog GPU name, or "auto" to detect with NVML'),
    ("vram-gb", "hardware.vram_gb", float, "VRAM per GPU in GB (defaults to the catalog's)"),
    ("gpus", "hardware.gpus", int, "number of GPUs"),
    ("background-vram-gb", "hardware.background_vram_gb", float, "VRAM used by the desktop or other tenants"),
    ("os", "hardware.os", str, "linux | windows"),
    ("model", "model.name", str, "catalog id, HF directory, GGUF file or ollama tag (empty: advisor picks)"),
    ("ttft-ms", "slo.ttft_ms", float, "time-to-first-token target in ms"),
    ("p95-latency-s", "slo.p95_latency_s", float, "p95 end-to-end latency target in s"),
    ("min-decode-tok-s", "slo.min_decode_tok_s", float, "minimum decode tok/s per user"),
    ("backend", "constraints.backend", str, "a backend you are tied to (empty: any)"),
    ("quantization", "constraints.quantization", str, "a quantization you are tied to (empty: any)"),
]
