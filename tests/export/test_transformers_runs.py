"""The transformers snippet runs: a tiny random-weight Llama (built here, nothing downloaded) loads with
the plan's dtype and attention, and the snippet's generate() gives the same greedy tokens as
transformers' own generate(). Runs on CPU; only the DEVICE line is changed for that."""

from __future__ import annotations

import json
import subprocess
import sys

from advisor.export import export
from plans import S, transformers_compiled

MAKE_TINY = r'''
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers
out = sys.argv[1]
vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
for i, w in enumerate("say hello in one short sentence . the a world".split()):
    vocab[w] = 4 + i
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>").save_pretrained(out)
cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, eos_token_id=2, bos_token_id=1, pad_token_id=0)
torch.manual_seed(0)
LlamaForCausalLM(cfg).save_pretrained(out)
'''

CHECK = r'''
import json
prompts = ["say hello", "the world in one short sentence ."]
mine = generate(prompts, max_new_tokens=12)
enc = tokenizer(prompts, return_tensors="pt", padding=True)
ref = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
ref = tokenizer.batch_decode(ref[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
print("RESULT " + json.dumps({"mine": mine, "ref": ref, "dtype": str(model.dtype),
                              "attn": model.config._attn_implementation, "batch": MAX_BATCH}))
'''


import pytest


@pytest.mark.parametrize("policy", ["off", "prefill-only"])  # prefill-only: torch.compile on this Linux box
def test_snippet_loads_and_generates_like_transformers(tmp_path, policy):
    tiny = tmp_path / "tiny-llama"
    subprocess.run([sys.executable, "-c", MAKE_TINY, str(tiny)], check=True, capture_output=True, timeout=120)
    r = transformers_compiled(str(tiny), compile=policy, quant="bf16")
    r.recommendation.settings["max_num_seqs"] = S(2, "scaling.concurrency", "answers: concurrency")
    r.recommendation.settings["dtype"] = S("bfloat16", "quantization.choice", "P.1")
    src = export(r, "transformers").files["serve.py"]
    assert src.count('DEVICE = "cuda"') == 1
    src = src.replace('DEVICE = "cuda"', 'DEVICE = "cpu"').replace('if __name__ == "__main__":', "if False:") + CHECK
    script = tmp_path / "serve_cpu.py"
    script.write_text(src)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    got = json.loads(line[len("RESULT "):])
    assert got["dtype"] == "torch.bfloat16" and got["attn"] == "sdpa" and got["batch"] == 2
    assert got["mine"] == got["ref"]
    assert (f"COMPILE = {policy!r}") in src
