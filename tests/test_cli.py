"""The headless contract: exit codes, one-line errors, the JSON shape, instant --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from advisor.cli import main

GPU = ["--gpu", "RTX 4080 Laptop"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_recommend_json_has_the_contract_shape(capsys):
    code, out, err = run_cli(capsys, "recommend", "--workload", "rag", "--risk", "moderate", "--concurrency", "8",
                             *GPU, "--model", "llama3.2-1b", "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    assert {"recommendation", "alternatives", "playbooks", "rules_fired", "warnings", "probes"} <= set(d)
    r = d["recommendation"]
    assert {"backend", "quantization", "model", "max_context_tokens", "concurrency", "replicas",
            "tensor_parallel", "predicted"} <= set(r)
    assert {"vram_gb", "ttft_ms", "decode_tok_s_per_user", "total_tok_s"} <= set(r["predicted"])
    assert r["model"] == "llama3.2-1b" and r["concurrency"] == 8
    for alt in d["alternatives"]:
        assert set(r) <= set(alt) and alt["lost_because"]
    assert all(pb["id"].startswith("H.") for pb in d["playbooks"])
    assert all({"rule", "source", "because"} <= set(f) for f in d["rules_fired"])
    # every predicted figure says where it came from
    assert set(r["predicted"]["origins"]) >= {"vram_gb", "ttft_ms", "decode_tok_s_per_user", "total_tok_s"}


def test_answers_file_and_toml_output_round_trip(tmp_path, capsys):
    import tomllib

    f = tmp_path / "a.toml"
    f.write_text('workload = "chat"\n[hardware]\ngpu = "RTX 4090"\n')
    code, out, err = run_cli(capsys, "recommend", "--answers", str(f), "--format", "toml")
    assert code == 0, err
    d = tomllib.loads(out)
    assert d["recommendation"]["backend"] in ("ollama", "llamacpp", "vllm", "tgi", "transformers",
                                              "transformers-compiled")
    code, text, _ = run_cli(capsys, "recommend", "--answers", str(f), "--format", "text")
    assert d["recommendation"]["model"] in text
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("argv, needle", [
    (["recommend", "--workload", "ragg", *GPU], "workload: 'ragg' is not allowed"),
    (["recommend", "--concurrency", "-2", *GPU], "concurrency"),
    (["recommend", "--vram-gb", "0", *GPU], "hardware.vram_gb"),
    (["recommend", "--gpu", "RTX 4008"], "did you mean"),
    (["recommend", "--model", "llama3.2-2b", *GPU], "model.name: 'llama3.2-2b'"),
    (["recommend", "--answers", "/nonexistent/a.toml"], "not found"),
    (["recommend", "--backend", "sglang", *GPU], "constraints.backend"),
    (["knowledge", "gpuz"], "did you mean 'gpus'"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_a_usage_error_is_one_line_too():
    p = subprocess.run([sys.executable, "-m", "advisor", "recommend", "--format", "yaml"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "--format" in p.stderr


def test_no_gpu_here_means_a_clear_line_asking_for_a_gpu_name(capsys):
    code, out, err = run_cli(capsys, "recommend", "--gpu", "auto")
    if code == 0:  # this machine has a GPU and NVML: the advice is for it
        return
    assert "hardware.gpu" in err and "--gpu" in err and len(err.strip().splitlines()) == 1


def test_knowledge_lists_tables_and_shows_rows_with_sources(capsys):
    code, out, _ = run_cli(capsys, "knowledge")
    assert code == 0 and "measurements" in out and "gpus" in out
    code, out, _ = run_cli(capsys, "knowledge", "gpus", "--format", "json")
    rows = json.loads(out)["gpus"]["rows"]
    assert any(r["name"] == "H100 80GB" and r["source"] for r in rows)
    code, out, _ = run_cli(capsys, "knowledge", "measurements", "--format", "json")
    rows = json.loads(out)["measurements"]["rows"]
    flagged = [r for r in rows if not r["plausible"]]
    assert flagged and all("roofline" in r["verdict"] for r in flagged)


def test_help_imports_neither_torch_nor_transformers():
    code = ("import sys, advisor.cli\n"
            "try:\n    advisor.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
            "sys.stderr.write(repr(bad))\nsys.exit(1 if bad else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert p.returncode == 0, p.stderr


def test_recommend_does_not_import_torch_either():
    code = ("import sys, advisor.cli\n"
            "advisor.cli.main(['recommend', '--gpu', 'RTX 4090', '--format', 'json'])\n"
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
            "sys.stderr.write(repr(bad))\nsys.exit(1 if bad else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_a_stored_figure_reads_as_what_was_measured_with_its_verdict_and_source(capsys):
    code, out, _ = run_cli(capsys, "knowledge", "measurements")
    assert code == 0
    blocks = out.split("\n\n")
    def block(heading: str) -> str:
        found = [b for b in blocks if b.lstrip().startswith("[") and heading in b.splitlines()[0]]
        assert len(found) == 1, heading
        return " ".join(found[0].split())  # undo the wrapping at 80 columns

    # TR127's Ollama median repeats one prompt (prompt cache): faster than physics allows
    median = block("prefill_ms (median) of qwen2.5-1.5b on ollama at 32,768 tokens")
    assert "plausible: NO (fails the roofline)" in median and "prompt cache" in median
    assert "source: TR127 §4.6, §7.2" in median
    # its repetition 0 is a real prefill, and passes
    rep0 = block("prefill_ms (rep-0) of qwen2.5-1.5b on ollama at 32,768 tokens")
    assert "plausible: yes" in rep0 and "source: TR127 §4.5" in rep0
