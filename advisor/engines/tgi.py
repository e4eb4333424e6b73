"""Text Generation Inference: continuous batching over a paged KV pool, as vLLM does.

Memory and scheduler: vLLM's (a paged pool claimed at start; --max-concurrent-requests answers 429
past it rather than queueing). Speed: no one measured TGI here: it borrows vLLM's per-architecture
rows (the same class of kernels; the backends row's `calibration_like`), and its figures stay
assumed with the wide band. Probes: an OpenAI-compatible probe that met TGI.

Export: Hugging Face TGI: serve.sh with the `docker run` of the TGI image, one container per replica.

Checked against TGI 3.3.5 (quick tour image tag) and launcher/src/main.rs: --model-id,
--max-input-tokens (--max-input-length is its legacy name), --max-total-tokens,
--max-concurrent-requests, --num-shard, --quantize {awq,eetq,exl2,gptq,marlin,bitsandbytes,
bitsandbytes-nf4,bitsandbytes-fp4,fp8}, --dtype {float16,bfloat16} (not together with
--quantize), --cuda-memory-fraction. The image listens on port 80; without --num-shard TGI shards
over every visible GPU, so the snippet always passes it and names the GPUs with --gpus.
"""

from __future__ import annotations

from advisor.domain import Setting
from advisor.engines.base import Sizing, put
from advisor.engines.vllm import PagedServer
from advisor.snippet import (
    Ctx,
    Snippet,
    balancing_note,
    docker_mount_source,
    header,
    hf_checkpoint,
    one_of,
    sh,
    shell,
)
from advisor.snippet.shell import Flag


class Tgi(PagedServer):
    kind = "tgi"

    def _engine_settings(self, out: dict[str, Setting], s: Sizing) -> None:
        super()._engine_settings(out, s)
        put(out, "max_input_tokens", max(s.max_context_tokens - s.output_tokens, 1), "context.budget",
            self.budget_source())


# ------------------------------------------------------------------ export: serve.sh (docker run)
TARGET = "tgi"
IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.5"
CHECKED = f"TGI 3.3.5 ({IMAGE}, text-generation-launcher)"
QUANTS = ("fp16", "bf16", "fp8", "awq", "gptq", "int8", "nf4")
QUANTIZE = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "int8": "bitsandbytes", "nf4": "bitsandbytes-nf4"}
BASE_PORT = 8080


def launcher_flags(ctx: Ctx) -> list[Flag]:
    flags = []
    inp = ctx.setting("max_input_tokens")
    if inp is not None:
        flags.append(Flag.whole("--max-input-tokens", inp))
    else:
        ctx.missing("max_input_tokens", "TGI picks its own longest prompt, which must stay below --max-total-tokens")
    total = ctx.pick("max_model_len", "max_context_tokens")
    flags.append(Flag.whole("--max-total-tokens", total))
    seqs = ctx.pick("max_num_seqs", "concurrency")
    flags.append(Flag.whole("--max-concurrent-requests", seqs,
                            "TGI answers HTTP 429 to requests beyond this many in flight, it does not queue them"))
    util = ctx.setting("gpu_memory_utilization")
    if util is not None:
        flags.append(Flag.share("--cuda-memory-fraction", util))
    q = ctx.head("quantization")
    if ctx.quant in QUANTIZE:
        flags.append(Flag("--quantize", QUANTIZE[ctx.quant], q))  # --dtype cannot go with --quantize
    else:
        dtype = ctx.setting("dtype")
        if dtype is not None and dtype.value != "auto":
            flags.append(Flag("--dtype", one_of(dtype, ("float16", "bfloat16")), dtype))
        elif dtype is None:
            flags.append(Flag("--dtype", {"fp16": "float16", "bf16": "bfloat16"}[ctx.quant], q))
    tp = ctx.head("tensor_parallel")
    flags.append(Flag.whole("--num-shard", tp))
    return flags


def export(ctx: Ctx) -> Snippet:
    ref = hf_checkpoint(ctx, QUANTS, "for GGUF quantizations export for ollama or llamacpp")
    flags = launcher_flags(ctx)
    n = ctx.replicas
    ports = ctx.ports(BASE_PORT)
    local = ref.kind == "local-dir"

    lines = shell.prologue(header(ctx, "TGI server", CHECKED))
    lines += [f"# {ctx.head('model').why()}", f"# {ref.val.why()}"]
    if local:
        lines += [f"MOUNT={sh(docker_mount_source(ref.location))}  # the model folder, read-only at /model",
                  "MODEL_ID=/model"]
    else:
        lines.append(f"MODEL_ID={sh(ref.value)}")
    lines += ['VOLUME="${VOLUME:-$HOME/.cache/tgi}"  # export default: where TGI keeps downloaded weights',
              f"IMAGE={sh(IMAGE)}  # export default, not advice: the version these flags were checked against", ""]
    lines += shell.array("args", flags)
    lines.append("")
    mount = ' --mount "$MOUNT"' if local else ""

    def command(port: int, i: int) -> str:
        gpus = ",".join(map(str, ctx.gpus_of(i)))
        return (f"docker run --rm --gpus {sh(chr(34) + 'device=' + gpus + chr(34))} --shm-size 1g "
                f"-p 127.0.0.1:{port}:80 -v \"$VOLUME\":/data{mount} -e HF_TOKEN "
                f"\"$IMAGE\" --model-id \"$MODEL_ID\" \"${{args[@]}}\"")

    lines.append(f"# export default, not advice: published on 127.0.0.1:{ports[0]}"
                 + (f"-{ports[-1]}" if n > 1 else "") + "; the container listens on 80")
    lines += shell.launch(ctx, command, ports, gpu_env=False)  # docker picks GPUs with --gpus
    ctx.windows_note("TGI runs as a Linux container; run serve.sh inside WSL2 with Docker Desktop "
                     "(WSL2 backend, GPU support on)")
    if n > 1:
        balancing_note(ctx, ports, "tgi")
    return Snippet(target="tgi", files={"serve.sh": "\n".join(lines) + "\n"}, notes=ctx.notes)
