#!/usr/bin/env python3
"""A random-weight Hugging Face model folder of a catalog architecture, with a real tokenizer.

`transformers serve` loads a folder (config.json, safetensors, tokenizer files). Speed and memory
do not depend on the weights' values, so the weights are transformers' own random init of the
catalog's dims (knowledge/models.toml, via probes.transformers_probe.config_from_spec); the
tokenizer is the real byte-level BPE of the family (tokens and merges from llama.cpp's vocab-only
GGUFs, dumped as JSON by bench/calibrate/llamacpp/make_gguf.py) with a ChatML chat template, so the server
applies a chat template as it would for the real model.

A random model's greedy token could be end-of-sequence, a special token or a byte fragment that
decodes to no text on its own; the LM head rows of those (and of the ids past the tokenizer) are
zeroed (logit 0, below the max of ~150K random logits), so every answer runs to max_tokens and each
token streams text: the first text chunk is the first token.

Run from the repository root with the project installed (`python3 -m pip install --no-deps
--no-build-isolation -e .`; the `model` command reads the catalog through advisor.knowledge):

    python3 -m bench.calibrate.transformers_serve.make_model tokenizer --family qwen2 --dump VOCAB.tokenizer.json --out DIR
    python3 -m bench.calibrate.transformers_serve.make_model model --model qwen2.5-1.5b --tokenizer DIR --out DIR [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}{% endif %}"
          "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
# the pre-tokenizer split of each family (tokenizer.json of Qwen2.5 / Llama 3)
SPLITS = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


def tokenizer_from_dump(dump: Path, family: str):
    """A PreTrainedTokenizerFast from the GGUF tokenizer fields (tokens, types, merges, special ids)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    fields = {k: v for k, v, *_ in json.loads(Path(dump).read_text())}
    tokens = fields["tokenizer.ggml.tokens"]
    types = fields["tokenizer.ggml.token_type"]
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
    normal = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 1}
    tok = Tokenizer(models.BPE(vocab=normal, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLITS[family]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty != 1]
    tok.add_special_tokens(special)
    ids = {k.rsplit(".", 1)[-1]: tokens[v] for k, v in fields.items()
           if k.endswith(("eos_token_id", "bos_token_id", "padding_token_id"))}
    eos = ids.get("eos_token_id")
    if family == "llama":
        eos = "<|eot_id|>"  # the instruct models end a turn with it
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=ids.get("bos_token_id"),
                                   pad_token=ids.get("padding_token_id") or eos)
    fast.chat_template = CHATML if family == "qwen2" else LLAMA3
    return fast


def build(model_id: str, tokenizer_dir: Path, out: Path, dtype: str = "bfloat16", device: str = "cpu",
          seed: int = 0) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from advisor.knowledge import load_knowledge
    from advisor.probes.transformers_probe import config_from_spec

    spec = load_knowledge().model(model_id, field="--model")
    cfg = config_from_spec(spec)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    cfg.eos_token_id = tok.eos_token_id
    cfg.bos_token_id = tok.bos_token_id
    cfg.pad_token_id = tok.pad_token_id
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    with torch.no_grad():  # no special token, byte fragment or id past the tokenizer wins a greedy step
        head = model.get_output_embeddings().weight
        texts = tok.batch_decode([[i] for i in range(len(tok))])
        silent = {i for i, t in enumerate(texts) if not t.strip() or "\ufffd" in t}
        dead = sorted(set(tok.all_special_ids) | silent | set(range(len(tok), head.shape[0])))
        head[dead] = 0
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                                               pad_token_id=tok.pad_token_id, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    info = {"model": model_id, "dir": str(out), "dtype": dtype, "params": sum(p.numel() for p in model.parameters()),
            "vocab": len(tok), "build_s": round(time.perf_counter() - t0, 2)}
    (out / "advisor_build.json").write_text(json.dumps(info))
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return info


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokenizer")
    t.add_argument("--family", choices=sorted(SPLITS), required=True)
    t.add_argument("--dump", required=True, help="a GGUF tokenizer dump (bench/calibrate/llamacpp/make_gguf.py tokenizer_fields)")
    t.add_argument("--out", required=True)
    m = sub.add_parser("model")
    m.add_argument("--model", required=True, help="id in knowledge/models.toml")
    m.add_argument("--tokenizer", required=True, help="a folder written by the tokenizer command")
    m.add_argument("--out", required=True)
    m.add_argument("--dtype", default="bfloat16")
    m.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "0") != "" else "cpu")
    a = ap.parse_args()
    if a.cmd == "tokenizer":
        tok = tokenizer_from_dump(Path(a.dump), a.family)
        tok.save_pretrained(a.out)
        print(json.dumps({"tokenizer": a.out, "tokens": len(tok), "eos": tok.eos_token}))
    else:
        print(json.dumps(build(a.model, Path(a.tokenizer), Path(a.out), a.dtype, a.device)))


if __name__ == "__main__":
    main()
