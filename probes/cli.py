"""`advisor probe`: measure this machine. Progress on stderr, the result on stdout (text or --json)."""

from __future__ import annotations

import argparse
import math
import re
import sys

from advisor.errors import AdvisorError, ProbeError
from advisor.probes.runner import BACKENDS, KINDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="ID|PATH",
                        help="catalog id (e.g. qwen2.5-1.5b), local HF directory, GGUF file, Ollama tag or served "
                             "model id (transformers default: qwen2.5-1.5b; servers: the first they list)")
    parser.add_argument("--backend", default="transformers", metavar="|".join(BACKENDS),
                        help="what to measure (default transformers): "
                             + "; ".join(f"{k.name}: {k.about}" for k in KINDS.values()))
    servers = [k.name for k in KINDS.values() if k.needs_url != "no"]
    parser.add_argument("--url", help=f"server URL, http:// or https:// (--backend {'|'.join(servers)}; "
                                      "ollama's default is OLLAMA_HOST, else http://127.0.0.1:11434)")
    parser.add_argument("--timeout", metavar="SECONDS",
                        help="the most one request to a server may take, start to last byte "
                             "(default 300; the probe then stops with exit 4)")
    parser.add_argument("--json", action="store_true", help="print the ProbeResult as JSON")
    parser.add_argument("--fresh", action="store_true", help="measure again instead of answering from the cache")
    parser.add_argument("--attention", default="sdpa", metavar="sdpa|eager",
                        help="transformers attention implementation (default sdpa; flash_attention_2 where installed)")
    parser.add_argument("--dtype", default="float16", metavar="float16|bfloat16|float32", help="transformers dtype")
    parser.add_argument("--contexts", metavar="N,N,N",
                        help="context lengths to measure (default 512,1024,2048; servers 512,2048)")
    parser.add_argument("--cpu", action="store_true",
                        help="run the transformers probe on the CPU (checks the pipeline; memory is tensor bytes, "
                             "not VRAM)")
    parser.add_argument("--hardware", action="store_true", help="only list the GPUs NVML sees")


def parse_contexts(text: str | None) -> list[int] | None:
    if text is None:
        return None
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        mult = 1
        if part[-1].lower() == "k":
            part, mult = part[:-1], 1024
        if not re.fullmatch(r"[+-]?[0-9]{1,12}", part):
            raise AdvisorError(f"--contexts: {text[:40]!r} is not allowed; "
                               "expected comma-separated token counts like 512,2048,8192")
        n = int(part) * mult
        if n <= 0 or n > 2_000_000:
            raise AdvisorError(f"--contexts: {part[:12]!r} is not allowed; expected 1 .. 2,000,000 tokens")
        out.append(n)
    if not out:
        raise AdvisorError("--contexts: expected at least one token count, like 512,2048")
    return out


class _Progress:
    """One line on stderr, rewritten in place on a terminal, one line per step otherwise."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.width = 0

    def __call__(self, p) -> None:
        from advisor.probes.http import one_line

        line = f"[{p.fraction * 100:3.0f}%] {p.step}: {one_line(p.message, 200)}"
        if self.tty:
            pad = max(self.width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


def parse_timeout(text: str | None) -> float | None:
    if text is None:
        return None
    shown = str(text)[:40]
    try:
        t = float(text)
    except ValueError:
        raise AdvisorError(f"--timeout: {shown!r} is not allowed; expected seconds, like 60") from None
    if not (math.isfinite(t) and 0.1 <= t <= 86_400):
        raise AdvisorError(f"--timeout: {shown!r} is not allowed; expected 0.1 .. 86,400 seconds")
    return t


def run(args: argparse.Namespace) -> int:
    if args.backend not in KINDS:
        raise AdvisorError(f"--backend: {str(args.backend)[:40]!r} is not allowed; "
                           f"expected one of {', '.join(BACKENDS)}")
    if getattr(args, "hardware", False):
        return _hardware(args)
    contexts = parse_contexts(args.contexts)
    kind = KINDS[args.backend]
    servers = [k.name for k in KINDS.values() if k.needs_url != "no"]
    if args.url is not None and kind.needs_url == "no":
        raise AdvisorError(f"--url: only with --backend {' or '.join(servers)}")
    if args.url is not None and not args.url.strip():
        raise AdvisorError("--url: empty; expected a server address like http://localhost:8000")
    timeout = parse_timeout(getattr(args, "timeout", None))
    if timeout is not None and kind.needs_url == "no":
        raise AdvisorError(f"--timeout: only with --backend {' or '.join(servers)}")
    from advisor.probes.runner import run_probe

    progress = _Progress()
    try:
        result = run_probe(model=args.model, backend=args.backend, url=args.url, fresh=args.fresh,
                           attention=args.attention, dtype=args.dtype, contexts=contexts, progress=progress,
                           device="cpu" if getattr(args, "cpu", False) else None, timeout=timeout)
    except KeyboardInterrupt:
        progress.close()
        raise ProbeError("probe interrupted; its memory was freed") from None
    finally:
        progress.close()
    if args.json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(render_text(result))
    return 0


def _hardware(args) -> int:
    import json

    from advisor.knowledge import load_knowledge
    from advisor.probes.hardware import detect_gpus

    gpus = detect_gpus(load_knowledge())
    if args.json:
        sys.stdout.write(json.dumps([g.model_dump() for g in gpus], indent=2) + "\n")
        return 0
    for g in gpus:
        others = g.other_processes_gb if g.other_processes_gb is not None else "?"
        sys.stdout.write(f"GPU {g.index}: {g.name} ({g.catalog_name or 'not in the catalog'}), {g.total_gb:.1f} GB, "
                         f"{g.free_gb:.1f} GB free, {others} GB "
                         f"used by other processes; driver {g.driver}, CUDA {g.cuda}, compute {g.compute_capability}, "
                         f"PCIe {g.pcie or '?'}\n")
    return 0


def _mb(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"


def render_text(r) -> str:

    head = f"{r.backend} probe of {r.model}"
    if r.gpu:
        head += f" on {r.gpu}"
    if r.attention:
        head += f" ({r.attention}, {r.dtype})"
    elif r.dtype:
        head += f" ({r.dtype})"
    from advisor.probes.http import one_line

    lines = [one_line(head, 300) + (" [cached]" if r.cached else ""), ""]
    if r.base_vram_mb is not None:
        lines.append(f"  base memory after load   {_mb(r.base_vram_mb)} MiB")
    if r.curve:
        lines.append("  peak memory (generate()-style prefill / full-logits forward):")
        for p in r.curve:
            if p.status == "ok":
                full = f" / {_mb(p.full_logits_peak_mb)}" if p.full_logits_peak_mb is not None else ""
                lines.append(f"    {p.context_tokens:>8,} tokens  {_mb(p.peak_mb):>10}{full} MiB")
            else:
                lines.append(f"    {p.context_tokens:>8,} tokens  {p.status}: {p.note}")
    if r.fit is not None:
        f = r.fit
        term = f" + {f.quadratic_mb_per_token2 * 1e6:.3f} MiB per 1M tokens^2" if f.kind == "quadratic" else ""
        lines.append(f"  fit ({f.kind}): {_mb(f.base_mb)} MiB + {f.linear_mb_per_token * 1024:.1f} KiB/token{term}")
        top = max((p.context_tokens for p in r.curve if p.status == "ok"), default=0)
        for n in sorted({top * 4, top * 8} - {0}):
            lines.append(f"    predicts {n:>8,} tokens  {_mb(f.predict(n)):>10} MiB")
    if r.kv_bytes_per_token:
        lines.append(f"  KV cache                 {r.kv_bytes_per_token / 1024:,.1f} KiB per token")
    if r.ttft:
        lines.append("  prefill / TTFT (median; rep 0 apart):")
        for t in r.ttft:
            rep0 = f" (rep 0: {t.rep0_ms:,.1f} ms)" if t.rep0_ms is not None else ""
            lines.append(f"    {t.context_tokens:>8,} tokens  {t.ttft_ms:>10,.1f} ms x{t.repetitions}{rep0}")
        if r.ttft_fit is not None:
            top = max(t.context_tokens for t in r.ttft)
            lines.append(f"    predicts {top * 8:>8,} tokens  {r.ttft_fit.predict_ms(top * 8):>10,.1f} ms")
    if r.decode_tok_s:
        lines.append(f"  decode                   {r.decode_tok_s:,.1f} tok/s")
    itl = r.inter_token_ms_median
    if itl:
        lines.append(f"  inter-token latency      {itl:,.1f} ms (median)")
    limits = r.server_limits
    if r.max_model_len:
        why = f" ({limits['why']})" if limits.get("why") else ""
        lines.append(f"  max context              {r.max_model_len:,} tokens a request{why}")
    vram = r.server_vram
    if vram is not None:
        if vram.mib is not None:
            lines.append(f"  server GPU memory        {vram.mib:,.0f} MiB ({vram.method or 'NVML'})")
        else:
            lines.append(f"  server GPU memory        not measured: {vram.why or '?'}")
    g = (r.extra or {}).get("gguf")
    if g:
        lines.append(f"  architecture {g['architecture']}: {g['layers']} layers, {g['heads']} heads, "
                     f"{g['kv_heads']} KV heads, vocab {g['vocab_size']}, quantization {g['quantization'] or '?'}, "
                     f"weights {g['weight_bytes'] / 2**20:,.1f} MiB")
    if r.duration_s is not None and not r.cached:
        probe_s = (r.extra or {}).get("probe_s")
        lines.append(f"  took {r.duration_s:.1f} s" + (f" ({probe_s:.1f} s after load)" if probe_s is not None else ""))
    for w in r.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines) + "\n"
