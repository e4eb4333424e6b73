"""vLLM: PagedAttention, continuous batching with chunked prefill, a paged KV pool claimed at start.

Memory: at start it claims --gpu-memory-utilization of the GPU (weights, activations, CUDA
graphs, and a KV pool that fills the rest), shared by all running sequences block by block.
Scheduler: continuous batching; long prompts ride along in chunks of the step's token budget.
Speed: NVIDIA's measured vLLM kernel tables where the optional extra covers the GPU
(advisor/engines/aiconfigurator.py), else the roofline with coefficients fitted to those tables
per GPU architecture (calibration.toml `vllm.*`). Probes: an OpenAI-compatible probe that met vLLM.

Export: vLLM: a `vllm serve` script and a docker compose file (one service per replica).

Flags (checked against vLLM v0.31 docs and vllm/entrypoints/cli/serve.py; stable since v0.5):
model as the first positional argument of `vllm serve`, --max-model-len, --gpu-memory-utilization,
--max-num-seqs, --dtype {auto,float16,bfloat16}, --quantization {fp8,awq,gptq},
--tensor-parallel-size, --host, --port. The vllm/vllm-openai image's entrypoint is `vllm serve`,
so the compose `command` starts with the model.
"""

from __future__ import annotations

import math

from advisor.domain import Setting
from advisor.engines.base import Engine, Sizing, memory_share, put
from advisor.snippet import (
    Ctx,
    Snippet,
    balancing_note,
    bind_host_comment,
    compose_str,
    header,
    hf_checkpoint,
    one_line,
    one_of,
    sh,
    shell,
)
from advisor.snippet.shell import Flag


class PagedServer(Engine):
    """vLLM-style servers: claim a fraction of the GPU at start, page the KV cache on demand."""

    def _engine_settings(self, out: dict[str, Setting], s: Sizing) -> None:
        k = self.k
        # --max-model-len is the longest single request the server accepts, not pool / N: the
        # workload's request with headroom, up to what the pool holds for one sequence.
        ask = s.prompt_tokens + s.output_tokens
        room = k.value("max_model_len_headroom")
        longest = min(max(int(math.ceil(ask * room / 256) * 256), ask), s.budget_one, s.model.max_context)
        put(out, "max_model_len", max(longest, min(ask, s.model.max_context)), "context.max-model-len",
            f"the workload's {ask:,}-token request x {room:g} ({k.source('max_model_len_headroom')}), "
            f"at most one sequence's share of the KV pool ({s.budget_one:,}) and the model's {s.model.max_context:,}")
        put(out, "max_num_seqs", s.seqs, self.seqs_rule(s),
            self.seqs_source(s, "answers: concurrency (sequences in flight; vLLM pages KV on demand)"))
        # the server refuses to start if it cannot claim this fraction
        util = memory_share(s.usable_gb, s.total_gb, k.value("vllm.gpu_memory_utilization"))
        put(out, "gpu_memory_utilization", util, "context.gpu-memory-utilization",
            k.source("vllm.gpu_memory_utilization") + "; capped by what other tenants leave free")


class Vllm(PagedServer):
    kind = "vllm"


# ------------------------------------------------------------------ export: serve.sh and compose.yaml
TARGET = "vllm"
CHECKED = "vLLM v0.31 (`vllm serve`, vllm/vllm-openai image)"
QUANTS = ("fp16", "bf16", "fp8", "awq", "gptq")
DTYPES = ("auto", "float16", "bfloat16")
BASE_PORT = 8000
IMAGE = "vllm/vllm-openai:latest"


def server_flags(ctx: Ctx) -> list[Flag]:
    """The engine flags shared by the script and the compose file, in the order the issue lists them."""
    flags = [Flag.whole("--max-model-len", v) for v in [ctx.pick("max_model_len", "max_context_tokens")]]
    util = ctx.setting("gpu_memory_utilization")
    if util is not None:
        flags.append(Flag.share("--gpu-memory-utilization", util))
    else:
        ctx.missing("gpu_memory_utilization", "vLLM claims its default 0.9 of each GPU")
    seqs = ctx.pick("max_num_seqs", "concurrency")
    flags.append(Flag.whole("--max-num-seqs", seqs))
    flags += dtype_flags(ctx)
    tp = ctx.head("tensor_parallel")
    flags.append(Flag.whole("--tensor-parallel-size", tp))
    return flags


def dtype_flags(ctx: Ctx) -> list[Flag]:
    out = []
    dtype = ctx.setting("dtype")
    q = ctx.head("quantization")
    if dtype is not None:
        out.append(Flag("--dtype", one_of(dtype, DTYPES), dtype))
    elif ctx.quant in ("fp16", "bf16"):
        out.append(Flag("--dtype", {"fp16": "float16", "bf16": "bfloat16"}[ctx.quant], q))
    if ctx.quant in ("fp8", "awq", "gptq"):
        out.append(Flag("--quantization", ctx.quant, q))
    return out


def export(ctx: Ctx) -> Snippet:
    ref = hf_checkpoint(ctx, QUANTS,
                        "for GGUF quantizations export for ollama or llamacpp; for int8/nf4, tgi or transformers")
    flags = server_flags(ctx)
    n = ctx.replicas
    ports = ctx.ports(BASE_PORT)
    model_head = ctx.head("model")
    local = ref.kind == "local-dir"
    model_path = ref.location

    # ---- serve.sh
    lines = shell.prologue(header(ctx, "vLLM server", CHECKED))
    lines += [f"# {model_head.why()}", f"# {ref.val.why()}", f"MODEL={sh(model_path)}",
              bind_host_comment(f"port {ports[0]}" if n == 1 else f"ports {ports[0]}-{ports[-1]}"),
              'HOST="${HOST:-127.0.0.1}"', ""]
    lines += shell.array("args", flags)
    lines.append("")
    lines += shell.launch(ctx, lambda port, i: f'vllm serve "$MODEL" --host "$HOST" --port {port} "${{args[@]}}"', ports)
    serve = "\n".join(lines) + "\n"

    # ---- compose.yaml
    y = header(ctx, "vLLM docker compose", CHECKED)
    y += [f"# export default, not advice: image {IMAGE}; pin the tag you tested",
          "# ports are published on 127.0.0.1 only; change the host part to serve other machines", "services:"]
    for i, port in enumerate(ports):
        gpus = ctx.gpus_of(i)
        y += [f"  vllm-{i}:", f"    image: {IMAGE}", "    ipc: host  # vLLM shares tensors between processes through /dev/shm",
              "    ports:", f'      - "127.0.0.1:{port}:8000"',
              "    environment:", '      HF_TOKEN: "${HF_TOKEN:-}"  # gated models: export HF_TOKEN before `docker compose up`',
              "    volumes:", "      - type: bind", '        source: "${HOME}/.cache/huggingface"',
              "        target: /root/.cache/huggingface"]
        if local:
            y += ["      - type: bind", f"        source: {compose_str(model_path)}  # {one_line(ref.val.why())}",
                  "        target: /model", "        read_only: true"]
        y += ["    command:"]
        if local:
            y.append(f'      - "/model"  # {one_line(model_head.why())}; the folder above, mounted read-only')
            # serve.sh serves the folder under its path; the same name here, so clients send one model id
            y += ['      - "--served-model-name"', f"      - {compose_str(model_path)}  # as serve.sh names it"]
        else:
            y.append(f"      - {compose_str(model_path)}  # {one_line(model_head.why())}; {one_line(ref.val.why())}")
        for f in flags:
            y.append(f"      - {compose_str(f.flag)}")
            if f.value is not None:
                y.append(f"      - {compose_str(f.value)}  {f.comment()}")
        y += ["    deploy:", "      resources:", "        reservations:", "          devices:",
              "            - driver: nvidia",
              "              device_ids: [" + ", ".join(f'"{g}"' for g in gpus) + "]"
              + f"  # {'replica ' + str(i) + ': ' if n > 1 else ''}{len(gpus)} GPU(s) = tensor_parallel",
              "              capabilities: [gpu]"]
    compose = "\n".join(y) + "\n"

    ctx.windows_note("vLLM has no Windows build; run serve.sh inside WSL2, or compose.yaml with Docker Desktop "
                     "(WSL2 backend, GPU support on)")
    if n > 1:
        balancing_note(ctx, ports, "vllm")
    return Snippet(target="vllm", files={"serve.sh": serve, "compose.yaml": compose}, notes=ctx.notes)

