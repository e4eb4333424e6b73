"""Ollama: llama.cpp underneath, GGUF weights, OLLAMA_NUM_PARALLEL fixed slots, num_ctx reserved at load.

Memory: the runner reserves num_ctx x OLLAMA_NUM_PARALLEL of KV cache at load, plus llama.cpp's
compute buffer. Scheduler: fixed slots (a new prompt stalls the others while it is prefilled;
each slot at an Amdahl share of one stream, TR129), then a queue. Speed: llama.cpp's measured
coefficients (calibration.toml `llamacpp.*`). Probes: Ollama's own (/api/ps size_vram at two num_ctx).

Export: Ollama: a Modelfile, the server environment (ollama.env) and serve.sh (serve, pull, check, create, run).

The model is a library tag, a local GGUF file, or a local Safetensors folder, which `ollama create`
imports (docs/import.md) and, with `--quantize q8_0|q4_K_M`, quantizes from its 16-bit weights.
Checked against Ollama's Modelfile reference and parser (parser/parser.go: FROM, PARAMETER
num_ctx / temperature; '#' starts a comment only at the start of a line; a value may be
"quoted" or \"\"\"quoted\"\"\" and ends at the line break) and the server environment
(envconfig: OLLAMA_NUM_PARALLEL, OLLAMA_FLASH_ATTENTION, OLLAMA_KV_CACHE_TYPE,
OLLAMA_MAX_LOADED_MODELS, OLLAMA_HOST), Ollama 0.12-0.20 era docs. `ollama show TAG` prints
the quantization (e.g. Q4_K_M), which serve.sh checks before creating the model, because a
library tag without a suffix is whatever quantization the library chose.
"""

from __future__ import annotations

import os
import re

from advisor.engines.llamacpp import LlamaCppFamily
from advisor.snippet import (
    GGUF_LABEL,
    GGUF_QUANTS,
    Ctx,
    ExportError,
    Snippet,
    Val,
    balancing_note,
    boolean,
    fmt_num,
    header,
    integer,
    number,
    one_line,
    one_of,
    require_quant,
    require_single_gpu_model,
    sh,
    shell,
    text,
)


class Ollama(LlamaCppFamily):
    kind = "ollama"


# ------------------------------------------------------------------ export: Modelfile, ollama.env, serve.sh
TARGET = "ollama"
CHECKED = "Ollama Modelfile reference + parser, envconfig (Ollama 0.12-0.20)"
QUANTS = ("fp16", "bf16", *GGUF_QUANTS)
KV_TYPES = ("f16", "q8_0", "q4_0")
BASE_PORT = 11434
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9._-]+)?$")


# `ollama create --quantize` turns a 16-bit Safetensors folder into these (Ollama's import docs)
CREATE_QUANTIZE = {"q8_0": "q8_0", "q4_k_m": "q4_K_M"}


def model_source(ctx: Ctx) -> tuple[Val, str, str]:
    """(provenance, FROM value, kind): kind "tag" (library), "gguf" (a local GGUF file) or "dir" (a local
    Safetensors folder, which `ollama create` imports). The user's own file or folder wins over the catalog tag."""
    local = ctx.setting("local_path")
    if local is not None:
        path = text(local)
        kind = "gguf" if path.lower().endswith(".gguf") else "dir"
        if kind == "dir" and ctx.quant not in ("fp16", "bf16", *CREATE_QUANTIZE):
            q = ctx.head("quantization")
            raise ExportError(
                f"ollama imports the folder {path!r} at 16 bits or quantizes it to "
                f"{' or '.join(CREATE_QUANTIZE.values())} only, and the plan is {ctx.quant} (rule {q.rule}); "
                f"make a {GGUF_LABEL[ctx.quant]} GGUF with llama.cpp (convert_hf_to_gguf.py, then llama-quantize) "
                f"and name that file as model.name"
            )
        if not path.startswith("~"):
            path = os.path.abspath(path)  # FROM resolves relative paths against the Modelfile's folder
        return local, path, kind
    tag = ctx.setting("ollama_tag")
    if tag is None or not str(tag.value).strip():
        raise ExportError(
            f"ollama needs a library tag, a GGUF file or a Safetensors folder, and the plan names none for "
            f"{ctx.plan.model!r}; add ollama_tag to its catalog row or point model.name at the model's file or folder"
        )
    value = text(tag)
    if not _TAG.match(value):
        raise ExportError(f"ollama_tag: {value!r} (rule {tag.rule}) is not an Ollama model name (name[:tag])")
    return tag, value, "tag"


def modelfile_value(s: str) -> str:
    """A Modelfile argument that the parser reads back as exactly ``s``, or ExportError."""
    if any(c in s for c in "\r\n") or not s.replace("\t", " ").isprintable():
        raise ExportError("the model path holds a line break or a control character; a Modelfile cannot carry it")
    if s == s.strip() and '"' not in s[:1]:
        return s
    if '"' not in s:
        return f'"{s}"'
    if '"""' not in s and not s.startswith('"') and not s.endswith('"'):
        return f'"""{s}"""'
    raise ExportError("the model path has quotes a Modelfile value cannot hold; rename the file or folder")


def create_name(ctx: Ctx) -> str:
    """The local model name for `ollama create`: fixed alphabet, derived from the plan's model id."""
    base = re.sub(r"[^a-z0-9._-]+", "-", f"{ctx.plan.model}-{ctx.quant}".lower()).strip("-._") or "model"
    return f"advisor-{base}"[:80]


def env_values(ctx: Ctx) -> list[tuple[str, str, str]]:
    """(name, value, comment) for the server environment."""
    out = []
    par = ctx.pick("num_parallel", "concurrency")
    out.append(("OLLAMA_NUM_PARALLEL", str(integer(par)), par.why()))
    fa = ctx.setting("flash_attention")
    if fa is not None:
        out.append(("OLLAMA_FLASH_ATTENTION", "1" if boolean(fa) else "0", fa.why()))
    else:
        ctx.missing("flash_attention", "Ollama keeps its own default")
    kv = ctx.setting("kv_cache_type")
    if kv is not None:
        out.append(("OLLAMA_KV_CACHE_TYPE", one_of(kv, KV_TYPES), kv.why()))
    else:
        ctx.missing("kv_cache_type", "Ollama keeps its default f16 cache")
    out.append(("OLLAMA_MAX_LOADED_MODELS", "1",
                "export default, not advice: one model per server, as the plan's VRAM figure assumes"))
    return out


def export(ctx: Ctx) -> Snippet:
    require_quant(ctx, QUANTS, "export for vllm or tgi (fp8, awq, gptq) or transformers (int8, nf4)")
    require_single_gpu_model(ctx, "Ollama splits a model's layers across GPUs, it has no tensor parallelism")
    src, from_value, kind = model_source(ctx)
    quantize = CREATE_QUANTIZE.get(ctx.quant) if kind == "dir" else None
    name = create_name(ctx)
    n = ctx.replicas
    ports = [BASE_PORT + i for i in range(n)]
    env = env_values(ctx)

    # ---- Modelfile (comments only on their own lines: a '#' after a value is part of the value)
    mf = header(ctx, "Ollama Modelfile", CHECKED)
    mf += [f"# {ctx.head('model').why()}", f"# {src.why()}"]
    if kind == "gguf":
        mf.append(f"# {one_line(ctx.head('quantization').why())}; the GGUF file carries it")
    elif kind == "dir":
        how = (f"serve.sh runs `ollama create --quantize {quantize}` on the folder's 16-bit weights" if quantize
               else "the folder's 16-bit weights are imported as they are")
        mf += [f"# {one_line(ctx.head('quantization').why())}; {how}",
               "# Ollama converts Safetensors folders of the architectures it supports (Llama, Mistral, Gemma, "
               "Phi3, Qwen2, ...); for others `ollama create` says 'unsupported architecture'"]
    else:
        mf.append(f"# quantization {ctx.quant}: serve.sh checks that this tag is {GGUF_LABEL[ctx.quant]} "
                  f"({one_line(ctx.head('quantization').why())})")
    mf.append(f"FROM {modelfile_value(from_value)}")
    ctxlen = ctx.pick("num_ctx", "max_context_tokens")
    mf += [f"# {ctxlen.why()}; Ollama reserves num_ctx x OLLAMA_NUM_PARALLEL tokens of KV cache at load",
           f"PARAMETER num_ctx {integer(ctxlen)}"]
    temp = ctx.setting("temperature")
    if temp is not None:
        mf += [f"# {temp.why()}", f"PARAMETER temperature {fmt_num(number(temp))}"]
    modelfile = "\n".join(mf) + "\n"

    # ---- ollama.env (KEY=VALUE: systemd EnvironmentFile=, docker --env-file, or `set -a; . ./ollama.env`)
    ev = header(ctx, "Ollama server environment", CHECKED)
    windows = ctx.os == "windows"
    if windows:
        ev.append("# Windows (the Ollama app reads your user environment): quit Ollama from the tray, run the "
                  "`setx` lines at the end of this file in PowerShell or cmd, then start Ollama again")
    else:
        ev.append("# for a systemd install: `sudo systemctl edit ollama`, add EnvironmentFile=/path/to/ollama.env "
                  "under [Service], then `sudo systemctl restart ollama`")
    for k, v, why in env:
        ev += [f"# {one_line(why)}", f"{k}={v}"]
    ev += ["# export default, not advice: listen on localhost; 0.0.0.0:PORT serves other machines",
           f"OLLAMA_HOST=127.0.0.1:{ports[0]}"]
    if windows:
        ev.append("# the same settings for the Windows app (values are numbers and fixed words, nothing to quote):")
        ev += [f"#   setx {k} {v}" for k, v, _ in env] + [f"#   setx OLLAMA_HOST 127.0.0.1:{ports[0]}"]
    ctx.windows_note("run it from Git Bash or WSL with the Ollama app quit (it holds port 11434), or set the "
                     "variables as ollama.env shows and use the app with `ollama create` / `ollama run` as in serve.sh")
    envfile = "\n".join(ev) + "\n"

    # ---- serve.sh
    s = shell.prologue(header(ctx, "Ollama server", CHECKED))
    s.append("# the server reads these at start; a server that is already running keeps its own settings")
    for k, v, why in env:
        s.append(f"export {k}={sh(v)}  # {one_line(why)}")
    s += ["", f"# {ctx.head('model').why()}", f"# {src.why()}", f"BASE={sh(from_value)}",
          f"NAME={sh(name)}  # the local name `ollama create` gives the configured model",
          'MODELFILE="${MODELFILE:-Modelfile}"  # the Modelfile written next to this script', ""]
    hosts = [f"127.0.0.1:{p}" for p in ports]
    busy = (f"an Ollama server already answers on {hosts[0]}; it would not get these settings: stop it "
            f"(or put ollama.env in its service environment and restart it)")
    s += [f"if OLLAMA_HOST={sh(hosts[0])} ollama list >/dev/null 2>&1; then",
          f"  echo {sh(busy)} >&2",
          "  exit 1", "fi",
          "# the servers started here stop with this script: when it ends, fails a check or is interrupted",
          "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
          "trap 'exit 130' INT",
          "trap 'exit 143' TERM",
          "# export default, not advice: servers listen on localhost only",
          "pids=()"]
    for i, host in enumerate(hosts):
        gpu = f"CUDA_VISIBLE_DEVICES={','.join(map(str, ctx.gpus_of(i)))} " if n > 1 else ""
        s.append(f"OLLAMA_HOST={sh(host)} {gpu}ollama serve &" + (f"  # replica {i}" if n > 1 else ""))
        s.append("pids+=($!)")
    for i, host in enumerate(hosts):
        died = f"ollama serve on {host} exited before it answered; its error is above"
        s += [f"until OLLAMA_HOST={sh(host)} ollama list >/dev/null 2>&1; do",
              f"  kill -0 \"${{pids[{i}]}}\" 2>/dev/null || {{ echo {sh(died)} >&2; exit 1; }}",
              "  sleep 1", "done"]
    s.append("")
    first = f"OLLAMA_HOST={sh(hosts[0])}"
    if kind == "tag":
        label = GGUF_LABEL[ctx.quant]
        wrong = f"{from_value} is not {label}; pick the {label} tag of this model from its library page"
        s += [f"{first} ollama pull \"$BASE\"",
              f"# the plan is {ctx.quant}: refuse a tag whose weights are another quantization",
              f"info=$({first} ollama show \"$BASE\")",
              f"if ! grep -Eiq 'quantization[[:space:]]+{label}([[:space:]]|$)' <<<\"$info\"; then",
              f"  echo {sh(wrong)} >&2",
              "  exit 1", "fi"]
    if quantize:
        q = ctx.head("quantization")
        s.append(f"{first} ollama create \"$NAME\" --quantize {quantize} -f \"$MODELFILE\"  # {one_line(q.why())}")
    else:
        s.append(f"{first} ollama create \"$NAME\" -f \"$MODELFILE\"")
    s += ["# the created model is shared by every server of this user",
          "# load it now on every server (an empty prompt loads the model and returns)"]
    for host in hosts:
        s.append(f"OLLAMA_HOST={sh(host)} ollama run \"$NAME\" ''")
    s += [f"echo {sh('ready: ' + ', '.join('http://' + h for h in hosts) + ' (OpenAI API under /v1); chat with: ')}"
          f"\"OLLAMA_HOST={hosts[0]} ollama run $NAME\"", "wait"]
    serve = "\n".join(s) + "\n"

    if n > 1:
        balancing_note(ctx, ports, "ollama")
    return Snippet(target="ollama", files={"Modelfile": modelfile, "ollama.env": envfile, "serve.sh": serve},
                   notes=ctx.notes)
