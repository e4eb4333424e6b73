"""The exported serve.sh starts a real `transformers serve --continuous-batching` (a tiny random-weight
Qwen2 built here with a byte-level BPE trained on a few words and a chat template; nothing downloaded,
HF_HUB_OFFLINE=1; the LM-head rows of special tokens and byte fragments are zeroed, so every answer runs
to max_tokens and streams text),
on the CPU: the only edits to the script are the device, a small cache (on a CPU the cache would take
0.9 of the RAM) and a free port. Against it: the advisor's OpenAI-compatible probe, and a chat request
whose prompt is the model's own chat template."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from advisor.answers import answers_from_dict
from advisor.recommend import recommend
from advisor.export import export
from advisor.probes.runner import run_probe

MAKE_TINY = r'''
import sys, torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
out = sys.argv[1]
words = ("the river city morning light stone garden window market letter paper number table road music winter "
         "summer forest story water bridge school doctor planet silver engine user assistant hello Note").split()
special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator([" ".join(words)] * 50, trainers.BpeTrainer(
    vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
fast.save_pretrained(out)
cfg = Qwen2Config(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  tie_word_embeddings=True, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
torch.manual_seed(0)
m = Qwen2ForCausalLM(cfg)
texts = fast.batch_decode([[i] for i in range(len(fast))])
dead = sorted(set(fast.all_special_ids) | {i for i, t in enumerate(texts) if not t.strip() or "\ufffd" in t})
with torch.no_grad():
    m.get_output_embeddings().weight[dead] = 0
m.generation_config = GenerationConfig(eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, do_sample=False)
m.save_pretrained(out)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "tiny-qwen2"
    subprocess.run([sys.executable, "-c", MAKE_TINY, str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory, k):
    """serve.sh of a real transformers-serve plan for the tiny folder, running; (url, model name, snippet)."""
    a = answers_from_dict({"workload": "chat", "concurrency": 4, "hardware": {"gpu": "H100 80GB"},
                           "model": {"name": str(tiny)}, "constraints": {"backend": "transformers-serve"}})
    rec = recommend(a, knowledge=k)
    assert rec.recommendation is not None and rec.recommendation.backend == "transformers-serve"
    snippet = export(rec, "transformers")
    body = snippet.files["serve.sh"]
    port = _free_port()
    assert body.count("--port 8000") == 1 and body.count("  --continuous-batching") == 1
    body = body.replace("--port 8000", f"--port {port}").replace(
        "  --continuous-batching", "  --device cpu --cb-num-blocks 64\n  --continuous-batching")
    work = tmp_path_factory.mktemp("serve")
    (work / "serve.sh").write_text(body)
    bindir = os.path.dirname(shutil.which("transformers") or sys.executable)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
           "HOST": "127.0.0.1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(["bash", "serve.sh"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, (work / "server.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not answer /health in 240 s: "
                        + (work / "server.log").read_text()[-2000:])
        yield url, str(tiny), snippet
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_the_probe_measures_the_real_server_and_knows_it(server, k, tmp_path, monkeypatch):
    url, name, _ = server
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    r = run_probe(backend="openai", url=url, contexts=[64, 256], knowledge=k, fresh=True)
    assert r.model == name  # pinned to the folder the script names
    assert r.server == "transformers-serve" and r.extra["endpoint"] == "completions"
    # transformers serve ends a stream with finish_reason and no [DONE]: still a complete stream
    assert not [w for w in r.warnings if "truncated" in w]
    assert [t.context_tokens for t in r.ttft] and all(t.ttft_ms > 0 and t.repetitions == 3 for t in r.ttft)
    assert r.ttft[-1].context_tokens > r.ttft[0].context_tokens >= 60  # prompts sized as asked, in tokens
    assert r.decode_tok_s and r.decode_tok_s > 0
    # every measured answer ran to max_tokens (32): the usage the server reports
    runs = [x for rep in r.extra["repetitions"] for x in rep["runs"]]
    assert runs and all(x["completion_tokens"] == 32 and x["done"] for x in runs)


def test_chat_requests_get_the_models_chat_template(server, tiny):
    from transformers import AutoTokenizer

    url, name, _ = server
    messages = [{"role": "user", "content": "hello the river city"}]
    got = httpx.post(url + "/v1/chat/completions", timeout=120,
                     json={"model": name, "messages": messages, "max_tokens": 5, "temperature": 0}).json()
    tok = AutoTokenizer.from_pretrained(str(tiny))
    templated = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    templated = templated["input_ids"] if isinstance(templated, dict) or hasattr(templated, "keys") else templated
    assert got["usage"]["prompt_tokens"] == len(templated) > len(tok("hello the river city")["input_ids"])
    assert got["usage"]["completion_tokens"] == 5 and got["choices"][0]["message"]["content"].strip()


def test_a_wrong_model_name_is_refused_by_the_pinned_server(server):
    url, _, _ = server
    r = httpx.post(url + "/v1/completions", timeout=60, json={"model": "another/model", "prompt": "hello", "max_tokens": 2})
    assert r.status_code == 400 and "pinned" in r.text
