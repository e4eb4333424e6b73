"""llama.cpp's server (`llama-server`): GGUF weights, -c split across -np slots, continuous batching.

Memory: the KV cache for -c (num_ctx x slots) is reserved at load, plus its compute buffer.
Scheduler: continuous batching over its slots (the backends row). Speed: llama.cpp's measured
coefficients (calibration.toml `llamacpp.*`, fitted on an H100: bench/calibrate/llamacpp).
Probes: an OpenAI-compatible probe that met llama-server, or an Ollama probe (the same kernels).

Export: llama.cpp server: serve.sh running `llama-server` with the plan's flags.

Checked against llama.cpp tools/server/README.md (2026 master): -m/--model, -c/--ctx-size (the
total context, split across the -np/--parallel slots), -ngl/--n-gpu-layers, -np/--parallel,
-fa/--flash-attn on|off|auto (builds before mid-2025 took a bare -fa switch), -ctk/--cache-type-k,
-ctv/--cache-type-v, --host, --port.
"""

from __future__ import annotations

import os

from advisor.domain import Setting
from advisor.engines.base import Engine, Sizing, put
from advisor.snippet import (
    GGUF_LABEL,
    GGUF_QUANTS,
    Ctx,
    ExportError,
    Snippet,
    Val,
    balancing_note,
    bind_host_comment,
    boolean,
    header,
    integer,
    one_line,
    one_of,
    require_quant,
    require_single_gpu_model,
    sh,
    shell,
    text,
)
from advisor.snippet.shell import Flag


class LlamaCppFamily(Engine):
    """GGUF engines: the KV cache for num_ctx x slots is reserved at load."""

    def _engine_settings(self, out: dict[str, Setting], s: Sizing) -> None:
        put(out, "num_ctx", s.max_context_tokens, "context.budget", self.budget_source())
        put(out, "num_parallel", s.seqs, self.seqs_rule(s), self.seqs_source(s, "answers: concurrency"))
        put(out, "flash_attention", True, "context.flash-attention",
            "flash attention keeps attention memory linear in context (DESIGN: SDPA/flash vs eager)")
        put(out, "kv_cache_type", "f16", "context.kv-cache-type",
            "the budget assumes a 16-bit KV cache (2 x layers x kv_heads x head_dim x 2 B)")


class LlamaServer(LlamaCppFamily):
    kind = "llama-server"

    def _engine_settings(self, out: dict[str, Setting], s: Sizing) -> None:
        super()._engine_settings(out, s)
        put(out, "ctx_size_total", s.max_context_tokens * s.seqs, "context.budget",
            self.budget_source() + "; llama.cpp splits -c across its --parallel slots")
        put(out, "gpu_layers", 999, "context.weights-fit", "weights fit in VRAM: offload every layer")


# ------------------------------------------------------------------ export: serve.sh
TARGET = "llamacpp"
CHECKED = "llama.cpp llama-server (tools/server/README.md, 2026 master)"
QUANTS = ("fp16", "bf16", *GGUF_QUANTS)
KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
BASE_PORT = 8080


def total_context(ctx: Ctx) -> Flag:
    """-c: the plan's ctx_size_total; a plan made for Ollama carries num_ctx per slot and num_parallel
    slots instead, which is the same reservation Ollama makes (num_ctx x num_parallel), written out."""
    total = ctx.setting("ctx_size_total")
    if total is not None:
        return Flag.whole("--ctx-size", total)
    per = ctx.pick("num_ctx", "max_context_tokens")
    slots = ctx.pick("num_parallel", "concurrency")
    value = integer(per) * integer(slots)
    why = Val("ctx_size_total", value, f"{per.rule} x {slots.rule}",
              f"num_ctx {per.value} per slot x {slots.value} slots, the KV reservation Ollama makes for this plan")
    return Flag("--ctx-size", str(value), why)


def export(ctx: Ctx) -> Snippet:
    require_quant(ctx, QUANTS, "export for vllm or tgi (fp8, awq, gptq) or transformers (int8, nf4)")
    require_single_gpu_model(ctx, "the advisor plans no llama.cpp layer or row split across GPUs")
    local = ctx.setting("local_path")
    gguf = None
    if local is not None:
        gguf = text(local)
        if not gguf.lower().endswith(".gguf"):
            raise ExportError(f"llama.cpp needs a GGUF file; the model is the folder {gguf!r} "
                              f"(convert it with convert_hf_to_gguf.py, or export for vllm, tgi or transformers)")
        gguf = os.path.abspath(os.path.expanduser(gguf))

    flags = [total_context(ctx)]
    layers = ctx.setting("gpu_layers")
    if layers is not None:
        flags.append(Flag.whole("--n-gpu-layers", layers))
    else:
        ctx.missing("gpu_layers", "llama-server decides how many layers go to the GPU (current builds: auto; "
                    "builds before mid-2025 default to none, add --n-gpu-layers 999 there)")
    slots = ctx.pick("num_parallel", "concurrency")
    flags.append(Flag.whole("--parallel", slots))
    fa = ctx.setting("flash_attention")
    if fa is not None:
        flags.append(Flag("--flash-attn", "on" if boolean(fa) else "off", fa))
    else:
        ctx.missing("flash_attention", "llama-server keeps its default (auto)")
    kv = ctx.setting("kv_cache_type")
    if kv is not None:
        t = one_of(kv, KV_TYPES)
        flags += [Flag("--cache-type-k", t, kv), Flag("--cache-type-v", t, kv)]
    else:
        ctx.missing("kv_cache_type", "llama-server keeps its default f16 cache")

    n = ctx.replicas
    ports = ctx.ports(BASE_PORT)
    q = ctx.head("quantization")
    lines = shell.prologue(header(ctx, "llama.cpp server", CHECKED))
    lines += [f"# {ctx.head('model').why()}"]
    if gguf is not None and local is not None:
        lines += [f"# {local.why()}", f"# {one_line(q.why())}; the GGUF file carries it", f"MODEL_GGUF={sh(gguf)}"]
    else:
        lines += [f"# the plan names no GGUF file: set MODEL_GGUF to the {GGUF_LABEL[ctx.quant]} GGUF of this model",
                  f"# ({one_line(q.why())})",
                  ': "${MODEL_GGUF:?set MODEL_GGUF to the GGUF file of the model named above}"']
        ctx.notes.append(
            f"serve.sh needs MODEL_GGUF, the {GGUF_LABEL[ctx.quant]} GGUF of {ctx.plan.model}; an Ollama download "
            f"is one: `ollama show --modelfile TAG` prints its blob path on the FROM line."
        )
    lines += [bind_host_comment(f"port {ports[0]}" if n == 1 else f"ports {ports[0]}-{ports[-1]}"),
              'HOST="${HOST:-127.0.0.1}"', ""]
    body = shell.array("args", flags)
    lines += body[:1] + ['  -m "$MODEL_GGUF"  # the model file above'] + body[1:]
    lines.append("")
    lines += shell.launch(ctx, lambda port, i: f'llama-server --host "$HOST" --port {port} "${{args[@]}}"', ports)
    ctx.windows_note("run it from Git Bash (llama-server.exe takes the same flags) or WSL")
    if n > 1:
        balancing_note(ctx, ports, "llamacpp")
    return Snippet(target="llamacpp", files={"serve.sh": "\n".join(lines) + "\n"}, notes=ctx.notes)
