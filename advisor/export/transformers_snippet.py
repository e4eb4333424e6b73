"""Hugging Face transformers: serve.py, a short loader + generate() carrying the plan's values.

Checked against transformers 5.x (and 4.56+): from_pretrained(dtype=..., attn_implementation=...,
device_map=... | tp_plan="auto", quantization_config=BitsAndBytesConfig(...)); `dtype` replaced
`torch_dtype` in 4.56 (older releases: rename it). The compile policy "prefill-only" compiles the
forward pass used for the prompt with torch.compile and decodes eagerly, on Linux only.
"""

from __future__ import annotations

from advisor.export._common import (
    Ctx, Snippet, Val, header, hf_checkpoint, integer, number, one_line, one_of,
)

CHECKED = "transformers 5.24 / 4.56+ (from_pretrained dtype, attn_implementation, tp_plan), torch.compile"
QUANTS = ("fp16", "bf16", "awq", "gptq", "int8", "nf4")
DTYPES = {"float16": "torch.float16", "bfloat16": "torch.bfloat16", "auto": '"auto"'}
ATTN = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")


def _c(v: Val) -> str:
    return "  # " + v.why()


def _choice_line(ctx: Ctx, key: str, name: str, choices: tuple[str, ...], absent: str, why: str) -> str:
    """`NAME = 'choice'  # why` for a setting the plan has; else the `absent` line, and the gap said (`why`)."""
    v = ctx.setting(key)
    if v is not None:
        return f"{name} = {one_of(v, choices)!r}{_c(v)}"
    ctx.missing(key, why)
    return absent


def export(ctx: Ctx) -> Snippet:
    ref = hf_checkpoint(ctx, QUANTS, "fp8 needs vllm or tgi; GGUF quantizations need ollama or llamacpp")
    q = ctx.head("quantization")
    model_value = ref.location

    dtype = ctx.setting("dtype")
    if dtype is not None:
        dtype_line = f"DTYPE = {DTYPES[one_of(dtype, tuple(DTYPES))]}{_c(dtype)}"
    else:
        dtype_line = f"DTYPE = {DTYPES.get({'fp16': 'float16', 'bf16': 'bfloat16'}.get(ctx.quant, 'auto'))}{_c(q)}"
    attn_line = _choice_line(ctx, "attn_implementation", "ATTN", ATTN,
                             "ATTN = None  # not in this plan: transformers picks (sdpa where the model supports it)",
                             "transformers picks its default (sdpa where supported)")
    compile_line = _choice_line(ctx, "compile", "COMPILE", ("prefill-only", "off"),
                                "COMPILE = 'off'  # not in this plan: no torch.compile", "the snippet does not compile")
    ctxlen = ctx.head("max_context_tokens")
    batch = ctx.pick("max_num_seqs", "concurrency")
    temp = ctx.setting("temperature")
    temp_line = (f"TEMPERATURE = {float(number(temp))!r}{_c(temp)}" if temp is not None
                 else "TEMPERATURE = 0.0  # not in this plan: greedy decoding")
    tp = ctx.tp

    quant_cfg, check = "", ""
    if ctx.quant == "int8":
        quant_cfg = "BitsAndBytesConfig(load_in_8bit=True)"
    elif ctx.quant == "nf4":
        quant_cfg = ('BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", '
                     "bnb_4bit_compute_dtype=torch.float16)")
    elif ctx.quant in ("awq", "gptq"):
        check = ctx.quant

    L = [f"# {x}" for x in header(ctx, "transformers snippet", CHECKED, prefix="")]
    L += ["# Needs: torch, transformers" + (", accelerate" if (tp > 1 or quant_cfg) else "")
          + (", bitsandbytes" if quant_cfg else "")
          + (", and the kernels for " + ctx.quant.upper() if check else "") + ".",
          (f"# Tensor parallel over {tp} GPUs: run `torchrun --nproc-per-node {tp} serve.py`." if tp > 1
           else "# Run: python serve.py"),
          "import inspect", "import sys", "", "import torch", "from transformers import AutoModelForCausalLM, AutoTokenizer"
          + (", BitsAndBytesConfig" if quant_cfg else ""), "",
          f"MODEL = {model_value!r}  # {ctx.head('model').why()}; {ref.val.why()}",
          dtype_line, attn_line, compile_line,
          f"MAX_CONTEXT = {integer(ctxlen)}{_c(ctxlen)}; longer prompts are refused",
          f"MAX_BATCH = {integer(batch)}{_c(batch)}; prompts per generate() call",
          temp_line,
          'DEVICE = "cuda"  # export default: the GPU this process sees (set CUDA_VISIBLE_DEVICES)', ""]
    kwargs = [("dtype=DTYPE", ""), ("attn_implementation=ATTN", "")]
    if quant_cfg:
        kwargs.append((f"quantization_config={quant_cfg}", q.why()))
    if tp > 1:
        kwargs.append(('tp_plan="auto"', f"tensor_parallel {tp}: {ctx.head('tensor_parallel').why()}"))
    elif quant_cfg:
        kwargs.append(("device_map=DEVICE", "bitsandbytes places the weights while loading"))
    L += ["tokenizer = AutoTokenizer.from_pretrained(MODEL)",
          "if tokenizer.pad_token_id is None:",
          "    tokenizer.pad_token = tokenizer.eos_token",
          'tokenizer.padding_side = "left"',
          "model = AutoModelForCausalLM.from_pretrained(",
          "    MODEL,"]
    L += [f"    {code}," + (f"  # {one_line(why)}" if why else "") for code, why in kwargs]
    L += [").eval()" if (tp > 1 or quant_cfg) else ").to(DEVICE).eval()"]
    if check:
        L += ["_qc = getattr(model.config, \"quantization_config\", None)",
              "_method = _qc.get(\"quant_method\") if isinstance(_qc, dict) else getattr(_qc, \"quant_method\", None)",
              f"if str(getattr(_method, \"value\", _method)).lower() != {check!r}:",
              f"    sys.exit(f\"{{MODEL}} is not a {check.upper()} checkpoint (quant_method={{_method}})\")"]
    L += ["",
          "# Compile policy: compile the prompt (prefill) pass only, on Linux only; decode runs eagerly.",
          "prefill = model.forward",
          'if COMPILE == "prefill-only":',
          '    if sys.platform.startswith("linux"):',
          "        prefill = torch.compile(model.forward, dynamic=True)",
          "    else:",
          '        print("compile policy: Linux only; prefill runs eagerly here", file=sys.stderr)',
          "",
          "# the KV cache argument is `cache` in recent transformers 5.x, `past_key_values` before",
          'CACHE = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"',
          "_eos = model.generation_config.eos_token_id",
          "EOS = torch.tensor(_eos if isinstance(_eos, list) else [_eos if _eos is not None else -1])",
          "",
          "",
          "def _pick(logits):",
          "    if TEMPERATURE > 0:",
          "        return torch.multinomial(torch.softmax(logits.float() / TEMPERATURE, dim=-1), 1)[:, 0]",
          "    return logits.argmax(dim=-1)",
          "",
          "",
          "@torch.inference_mode()",
          "def generate(prompts, max_new_tokens=256):",
          '    """Complete each prompt: one compiled prefill for the batch, then eager decode steps."""',
          "    if len(prompts) > MAX_BATCH:",
          '        raise ValueError(f"{len(prompts)} prompts; this deployment takes at most {MAX_BATCH} at once")',
          '    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)',
          "    ids, mask = enc.input_ids, enc.attention_mask",
          "    if ids.shape[1] + max_new_tokens > MAX_CONTEXT:",
          '        raise ValueError(f"{ids.shape[1]} + {max_new_tokens} tokens exceed the context budget {MAX_CONTEXT}")',
          "    pos = (mask.cumsum(-1) - 1).clamp(min=0)",
          "    out = prefill(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)",
          "    past, eos = getattr(out, CACHE), EOS.to(ids.device)",
          "    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)",
          "    steps = []",
          "    for _ in range(max_new_tokens):",
          "        nxt = torch.where(done, tokenizer.pad_token_id, _pick(out.logits[:, -1, :]))",
          "        steps.append(nxt)",
          "        done |= torch.isin(nxt, eos)",
          "        if bool(done.all()):",
          "            break",
          "        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)",
          "        pos = pos[:, -1:] + 1",
          "        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,",
          "                    use_cache=True, **{CACHE: past})",
          "        past = getattr(out, CACHE)",
          "    return tokenizer.batch_decode(torch.stack(steps, dim=1), skip_special_tokens=True)",
          "",
          "",
          'if __name__ == "__main__":',
          '    print(generate(["Say hello in one short sentence."], max_new_tokens=32)[0])',
          ]
    if ctx.replicas > 1:
        r = ctx.head("replicas")
        groups = "; ".join(f"CUDA_VISIBLE_DEVICES={','.join(map(str, ctx.gpus_of(i)))}" for i in range(ctx.replicas))
        ctx.notes.append(
            f"{ctx.replicas} replicas (rule {r.rule}): run one process per GPU group ({groups}), each wrapping "
            f"generate() in your server on its own port, and balance them (nginx least_conn or a LiteLLM router)."
        )
    return Snippet(target="transformers", files={"serve.py": "\n".join(L) + "\n"}, notes=ctx.notes)
