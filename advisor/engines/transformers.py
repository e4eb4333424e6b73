"""Hugging Face transformers' generate() loop, served by `transformers serve` without continuous batching.

Memory: weights, the KV cache of the sequence being generated, and the whole prompt's
activations at prefill (no chunking; eager or SDPA's math fallback adds n x n score matrices).
Scheduler: one request at a time (requests take turns through generate() on one thread). Speed:
transformers' measured coefficients on the H100 (calibration.toml `transformers.*`); the
compiled variant (torch.compile on the prefill only, TR126) scales the prefill. Probes: the
transformers probe (a real model with random weights on this GPU).

Export (also for transformers serve's plans): Hugging Face transformers: serve.sh running
`transformers serve`, the OpenAI-compatible server.

Checked against transformers 5.24 (transformers/cli/serve.py, the typer options of `Serve`; tests
parse the script's flags with that very parser): the model as the positional argument (the server
is pinned to it and /v1/models lists it under that name), --continuous-batching (the paged cache
of the ContinuousBatchingManager; without it requests take turns through generate() on one
thread), --cb-max-memory-percent, --cb-max-batch-tokens, --attn-implementation, --dtype,
--quantization {bnb-4bit,bnb-8bit}, --host, --port. It needs the [serving] extra
(fastapi, uvicorn, openai). The chat template is the tokenizer's (tokenizer_config.json or
chat_template.jinja beside the weights): /v1/chat/completions applies it, /v1/completions sends
the raw prompt. There is no tensor-parallel option and no compile-the-prefill-only option
(--compile compiles the decode step with a static cache).
"""

from __future__ import annotations

from advisor.domain import Setting
from advisor.engines.base import Engine, Sizing, put
from advisor.snippet import (
    Ctx,
    ExportError,
    Snippet,
    balancing_note,
    bind_host_comment,
    boolean,
    fraction,
    header,
    hf_checkpoint,
    integer,
    one_line,
    one_of,
    sh,
    shell,
)
from advisor.snippet.shell import Flag


class Transformers(Engine):
    """A transformers generate() loop, optionally with a compiled prefill: served by `transformers serve`
    without continuous batching, whose requests take turns through generate() on one thread."""

    kind = "transformers"

    def _engine_settings(self, out: dict[str, Setting], s: Sizing) -> None:
        k = self.k
        put(out, "attn_implementation", "sdpa", "context.attention",
            "DESIGN: SDPA keeps peak memory linear in context; eager is quadratic")
        compile_src = k.source("compile_prefill_speedup_min")
        put(out, "compile", "prefill-only" if self.compiled_prefill else "off", "backend.compile-policy",
            compile_src + " (Linux only, never for decode)")
        put(out, "continuous_batching", False, "backend.batching",
            "a generate() loop: one request at a time (the plan's sequential model); " + self.row.source)
        if self.compiled_prefill:  # the compiled prefill graph is specialised to one prompt's shape
            put(out, "max_num_seqs", 1, "backend.compile-policy",
                compile_src + "; one prompt per compiled prefill, requests take turns "
                "(the plan's per-user rate assumes it)")
        else:
            put(out, "max_num_seqs", 1, "backend.batching",
                "transformers serve without --continuous-batching runs one generate() at a time; "
                "the others wait (the plan's per-user rate assumes it)")


# ------------------------------------------------------------------ export: serve.sh (`transformers serve`)
TARGET = "transformers"
CHECKED = "transformers 5.24 `transformers serve` (transformers/cli/serve.py), the [serving] extra"
QUANTS = ("fp16", "bf16", "awq", "gptq", "int8", "nf4")
DTYPES = ("auto", "float16", "bfloat16")
ATTN = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")
BNB = {"int8": "bnb-8bit", "nf4": "bnb-4bit"}
BASE_PORT = 8000
SERVE = "transformers-serve"  # the engine whose plans carry the continuous-batching knobs


def server_flags(ctx: Ctx) -> list[Flag]:
    """The engine flags of `transformers serve`, each with the rule that set it."""
    flags: list[Flag] = []
    cb = ctx.setting("continuous_batching")
    if cb is None:
        ctx.missing("continuous_batching", "the export turns --continuous-batching on (its default for a server: "
                    "without it requests take turns)", SERVE)
        on = True
        flags.append(Flag("--continuous-batching", None, None,
                          "export default, not advice: sequences share each step (paged cache)"))
    else:
        on = boolean(cb)
        if on:
            flags.append(Flag("--continuous-batching", None, cb, "sequences share each step (paged cache)"))
    if on:
        pct = ctx.setting("cb_max_memory_percent")
        if pct is not None:
            flags.append(Flag("--cb-max-memory-percent", repr(fraction(pct)), pct,
                              "of the GPU memory free once the weights are loaded, taken at the first request"))
        else:
            ctx.missing("cb_max_memory_percent", "the paged cache takes transformers' default 0.9 of the free memory",
                        SERVE)
        mbt = ctx.setting("cb_max_batch_tokens")
        if mbt is not None:
            flags.append(Flag.whole("--cb-max-batch-tokens", mbt, "tokens per step; a longer prompt is chunked"))
    dtype = ctx.setting("dtype")
    q = ctx.head("quantization")
    if ctx.quant in BNB:
        flags.append(Flag("--quantization", BNB[ctx.quant], q, "bitsandbytes, quantized while loading"))
    elif dtype is not None:
        flags.append(Flag("--dtype", one_of(dtype, DTYPES), dtype))
    elif ctx.quant in ("fp16", "bf16"):
        flags.append(Flag("--dtype", {"fp16": "float16", "bf16": "bfloat16"}[ctx.quant], q))
    attn = ctx.setting("attn_implementation")
    if attn is not None:
        flags.append(Flag("--attn-implementation", one_of(attn, ATTN), attn))
    else:
        ctx.missing("attn_implementation", "transformers picks the model's default attention (sdpa where supported)")
    comp = ctx.setting("compile")
    if comp is not None and one_of(comp, ("prefill-only", "off")) == "prefill-only":
        ctx.notes.append(
            f"compile: the plan compiles the prefill only (rule {comp.rule}), which `transformers serve` cannot do: "
            f"its --compile compiles the decode step (static cache), which TR126 advises against, so serve.sh leaves "
            f"it out and the server prefills eagerly: expect TTFT up to {1 / (1 - 0.24):.2f}x the plan's "
            f"(TR126's low-end 24 % prefill saving).")
    return flags


def export(ctx: Ctx) -> Snippet:
    ref = hf_checkpoint(ctx, QUANTS, "fp8 needs vllm or tgi; GGUF quantizations need ollama or llamacpp")
    if ctx.tp > 1:
        t = ctx.head("tensor_parallel")
        raise ExportError(f"transformers cannot express tensor_parallel {ctx.tp} (set by rule {t.rule}): "
                          "`transformers serve` has no tensor-parallel option; export for vllm or tgi instead")
    flags = server_flags(ctx)
    n = ctx.replicas
    ports = ctx.ports(BASE_PORT)
    model_head = ctx.head("model")
    ctxlen = ctx.head("max_context_tokens")
    conc = ctx.head("concurrency")
    pool = ctx.setting("kv_pool_tokens")
    cb_on = any(f.flag == "--continuous-batching" for f in flags)

    lines = shell.prologue(header(ctx, "transformers serve", CHECKED))
    lines += ["# Needs: pip install 'transformers[serving]>=5.24' and torch with CUDA (and bitsandbytes for --quantization).",
              f"# {model_head.why()}", f"# {ref.val.why()}",
              f"MODEL={sh(ref.location)}",
              bind_host_comment(f"port {ports[0]}" if n == 1 else f"ports {ports[0]}-{ports[-1]}"),
              'HOST="${HOST:-127.0.0.1}"',
              f"# {one_line(conc.why())}: {integer(conc)} request(s) in flight "
              + ("share each step (continuous batching)" if cb_on else
                 "take turns: one generate() at a time, the others wait"),
              f"# {one_line(ctxlen.why())}: prompt + answer up to {integer(ctxlen):,} tokens a request; "
              "transformers serve has no per-request limit of its own (the model's own maximum applies), "
              "so keep longer requests out at the client or proxy"]
    if pool is not None:
        lines.append(f"# {one_line(pool.why())}: the paged cache holds about {integer(pool):,} tokens, all requests together")
    lines.append("")
    lines += shell.array("args", flags)
    lines += ["",
              "# Clients: the OpenAI API at http://$HOST:PORT/v1, model = \"$MODEL\" as written above;",
              "# /v1/chat/completions applies the chat template of the model's tokenizer, /v1/completions sends",
              "# the raw prompt. For example:",
              "#   curl -s http://127.0.0.1:" + str(ports[0]) + "/v1/chat/completions -H 'Content-Type: application/json' \\",
              "#     -d '{\"model\": \"'\"$MODEL\"'\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'",
              "# GET /health says when it is up; GET /v1/models lists the model.", ""]
    lines += shell.launch(ctx, lambda port, i: f'transformers serve "$MODEL" --host "$HOST" --port {port} "${{args[@]}}"',
                           ports)
    ctx.notes.append(
        f"clients call the OpenAI-compatible API at http://127.0.0.1:{ports[0]}/v1 with model {ref.location!r}; "
        "/v1/chat/completions applies the chat template that ships with the tokenizer (a checkpoint without one "
        "needs a chat_template.jinja beside it), /v1/completions takes a raw prompt.")
    ctx.windows_note("run it from Git Bash or WSL2 (`transformers serve` takes the same flags in PowerShell)")
    if n > 1:
        balancing_note(ctx, ports, "transformers")
    return Snippet(target="transformers", files={"serve.sh": "\n".join(lines) + "\n"}, notes=ctx.notes)
