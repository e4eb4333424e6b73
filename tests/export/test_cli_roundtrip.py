"""`advisor export` end to end: the snippet carries exactly what `advisor recommend` says for the same
answers; --out writes files and never overwrites; bad input is one line."""

from __future__ import annotations

import re

import json

import pytest
import yaml

from advisor.cli import main
from conftest import bash_n, flag_values, parse_modelfile

H100_N8 = """workload = "chat"
concurrency = 8
context_tokens = 4096
[hardware]
gpu = "H100"
"""
LAPTOP_N1 = """workload = "chat"
concurrency = 1
context_tokens = 4096
[hardware]
gpu = "RTX 4080 Laptop"
"""
BATCH_3_GPUS = """workload = "summarization"
concurrency = 8
context_tokens = 4096
requests_per_day = 2000000
deadline_hours = 8
[hardware]
gpu = "H100"
gpus = 3
"""


def _answers(tmp_path, text, name="answers.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _recommend(capsys, path) -> dict:
    assert main(["recommend", "--answers", path, "--format", "json", "--no-cache"]) == 0
    return json.loads(capsys.readouterr().out)["recommendation"]


def test_vllm_export_matches_recommend(tmp_path, capsys):
    path = _answers(tmp_path, H100_N8)
    plan = _recommend(capsys, path)
    assert plan["backend"] == "vllm"
    out = tmp_path / "out"
    assert main(["export", "--answers", path, "--target", "vllm", "--out", str(out), "--no-cache"]) == 0
    assert "wrote" in capsys.readouterr().out
    svc = yaml.safe_load((out / "compose.yaml").read_text())["services"]
    assert len(svc) == plan["replicas"]
    cmd = next(iter(svc.values()))["command"]
    s = plan["settings"]
    assert cmd[0] == s["hf_repo"]["value"]
    f = flag_values(cmd[1:])
    assert int(f["--max-model-len"]) == s["max_model_len"]["value"]  # the longest request, with headroom
    assert int(f["--max-num-seqs"]) == s["max_num_seqs"]["value"] == plan["concurrency"] == 8
    assert float(f["--gpu-memory-utilization"]) == s["gpu_memory_utilization"]["value"]
    assert f["--dtype"] == s["dtype"]["value"]
    assert int(f["--tensor-parallel-size"]) == plan["tensor_parallel"]
    assert (out / "serve.sh").stat().st_mode & 0o111  # executable


def test_ollama_export_matches_recommend(tmp_path, capsys):
    path = _answers(tmp_path, LAPTOP_N1)
    plan = _recommend(capsys, path)
    assert plan["backend"] == "ollama"
    assert main(["export", "--answers", path, "--target", "ollama", "--no-cache"]) == 0
    text = capsys.readouterr().out
    assert "# ==> Modelfile <==" in text and "# ==> ollama.env <==" in text and "# ==> serve.sh <==" in text
    modelfile = text.split("# ==> Modelfile <==\n", 1)[1].split("\n# ==> ", 1)[0]
    cmds = dict(parse_modelfile(modelfile))
    assert cmds["model"] == plan["settings"]["ollama_tag"]["value"]
    assert int(cmds["num_ctx"]) == plan["settings"]["num_ctx"]["value"] == plan["max_context_tokens"]
    assert f"OLLAMA_NUM_PARALLEL={plan['settings']['num_parallel']['value']}" in text


def test_batch_replicas_export_matches_recommend(tmp_path, capsys):
    path = _answers(tmp_path, BATCH_3_GPUS)
    plan = _recommend(capsys, path)
    assert plan["replicas"] > 1
    assert main(["export", "--answers", path, "--target", plan["backend"], "--no-cache"]) == 0
    text = capsys.readouterr().out
    compose = text.split("# ==> compose.yaml <==\n", 1)[1].split("\n# notes:", 1)[0]
    svc = yaml.safe_load(compose)["services"]
    assert len(svc) == plan["replicas"]
    ids = [s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for s in svc.values()]
    assert ids == [[str(i)] for i in range(plan["replicas"])]
    assert "least_conn" in text


def test_out_never_overwrites(tmp_path, capsys):
    path = _answers(tmp_path, LAPTOP_N1)
    target = tmp_path / "serve.sh"
    target.write_text("my own script\n")
    assert main(["export", "--answers", path, "--target", "llamacpp", "--out", str(target), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "my own script\n"
    # a multi-file target stops before writing anything when one of its files exists
    folder = tmp_path / "ollama"
    folder.mkdir()
    (folder / "ollama.env").write_text("MINE=1\n")
    assert main(["export", "--answers", path, "--target", "ollama", "--out", str(folder), "--no-cache"]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["ollama.env"]
    assert (folder / "ollama.env").read_text() == "MINE=1\n"


def test_single_file_target_into_a_folder(tmp_path, capsys):
    path = _answers(tmp_path, H100_N8)
    folder = tmp_path / "snips"
    folder.mkdir()
    assert main(["export", "--answers", path, "--target", "transformers", "--out", str(folder), "--no-cache"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["serve.sh"]
    assert bash_n((folder / "serve.sh").read_text()).returncode == 0


@pytest.mark.parametrize("argv,words", [
    (["--target", "vlm"], "did you mean 'vllm'"),
    (["--target", "tgi"], None),  # fine: vLLM plan, exported for TGI
])
def test_cli_target_errors_are_one_line(tmp_path, capsys, argv, words):
    path = _answers(tmp_path, H100_N8)
    code = main(["export", "--answers", path, "--no-cache", *argv])
    captured = capsys.readouterr()
    if words is None:
        assert code == 0 and "docker run" in captured.out
    else:
        assert code == 2 and words in captured.err and len(captured.err.strip().splitlines()) == 1


def test_unexpressible_plan_exits_non_zero_with_the_reason(tmp_path, capsys):
    # tied to Ollama at a GGUF quantization, a plan vLLM cannot express
    path = _answers(tmp_path, LAPTOP_N1 + '[constraints]\nbackend = "ollama"\nquantization = "q4_k_m"\n')
    assert main(["export", "--answers", path, "--target", "vllm", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"vllm cannot serve quantization q\d_k", err) and len(err.strip().splitlines()) == 1
