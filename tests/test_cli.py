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


# ------------------------------------------------------------------ numbers through the real CLI
def advisor(*argv, stdin=None, timeout=60):
    """`python -m advisor ARGV` in a subprocess, from this checkout."""
    return subprocess.run([sys.executable, "-m", "advisor", *argv], capture_output=True, text=True,
                          timeout=timeout, input=stdin, env={**os.environ, "PYTHONPATH": os.getcwd()})


@pytest.mark.parametrize("flag, value, field", [
    ("--ttft-ms", "1e16", "slo.ttft_ms"),
    ("--ttft-ms", "0.00001", "slo.ttft_ms"),
    ("--ttft-ms", "inf", "slo.ttft_ms"),
    ("--ttft-ms", "nan", "slo.ttft_ms"),
    ("--vram-gb", "1e-9", "hardware.vram_gb"),
    ("--p95-latency-s", "-Infinity", "slo.p95_latency_s"),
    ("--concurrency", "1e3", "concurrency"),
    ("--concurrency", "true", "concurrency"),
    ("--deadline-hours", "1e+300", "deadline_hours"),
])
def test_a_bad_number_flag_is_one_line_and_exit_2(flag, value, field):
    p = advisor("recommend", "--gpu", "RTX 4090", f"{flag}={value}", "--format", "json")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"advisor: error: {field}: "), p.stderr
    assert "is not allowed; expected a" in lines[0]


def test_a_toml_boolean_is_not_a_number(tmp_path):
    for key, table in (("concurrency = true", ""), ("ttft_ms = false", "[slo]\n")):
        f = tmp_path / "a.toml"
        f.write_text(f'{table}{key}\n[hardware]\ngpu = "RTX 4090"\n' if not table else
                     f'[hardware]\ngpu = "RTX 4090"\n{table}{key}\n')
        p = advisor("recommend", "--answers", str(f))
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert "is not allowed; expected a" in p.stderr and ("true" in p.stderr or "false" in p.stderr)


def test_an_error_never_echoes_a_huge_value(tmp_path):
    p = advisor("recommend", "--gpu", "RTX 4090", "--workload", "w" * 100_000)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and len(p.stderr) < 400 and "…" in p.stderr
    p = advisor("recommend", "--gpu", "G" * 100_000)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and len(p.stderr) < 800, len(p.stderr)


def test_an_answers_fifo_or_device_does_not_hang(tmp_path):
    fifo = tmp_path / "a.toml"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        p = advisor("recommend", "--answers", path, timeout=20)
        assert p.returncode == 2 and "not a regular file" in p.stderr and p.stderr.count("\n") == 1


def test_format_answers_can_be_fed_back_and_plans_the_same(tmp_path):
    flags = ["--gpu", "RTX 4090", "--vram-gb", "12", "--workload", "rag", "--concurrency", "3",
             "--model", "llama3.2-1b", "--ttft-ms", "250"]
    p = advisor("recommend", *flags, "--format", "answers")
    assert p.returncode == 0, p.stderr
    saved = tmp_path / "saved.toml"
    saved.write_text(p.stdout)
    import tomllib

    data = tomllib.loads(p.stdout)
    assert data["hardware"]["vram_gb"] == 12 and data["slo"]["ttft_ms"] == 250 and data["concurrency"] == 3
    direct = advisor("recommend", *flags, "--format", "json", "--no-cache")
    again = advisor("recommend", "--answers", str(saved), "--format", "json", "--no-cache")
    assert direct.returncode == again.returncode == 0, again.stderr
    assert json.loads(direct.stdout) == json.loads(again.stdout)
    assert "'answers' prints the answers" in " ".join(advisor("recommend", "--help").stdout.split())


def test_export_takes_the_same_answer_flags_as_recommend():
    from advisor.cli import build_parser

    def flags(command):
        parser = build_parser([command])
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        return {o for a in sub._actions for o in a.option_strings}

    from advisor.fields import answer_fields

    wanted = {f"--{f.flag}" for f in answer_fields()} | {"--answers", "--probes", "--no-cache"}
    assert wanted <= flags("recommend") and wanted <= flags("export")
    p = advisor("export", "--gpu", "RTX 4090", "--model", "llama3.2-1b", "--concurrency", "8",
                "--target", "vllm", "--no-cache")
    assert p.returncode == 0, p.stderr
    plan = json.loads(advisor("recommend", "--gpu", "RTX 4090", "--model", "llama3.2-1b", "--concurrency", "8",
                              "--format", "json", "--no-cache").stdout)["recommendation"]
    assert plan["concurrency"] == 8  # the flag reached both commands
    assert f"--max-num-seqs {plan['settings']['max_num_seqs']['value']} " in p.stdout
    assert f"--max-model-len {plan['settings']['max_model_len']['value']} " in p.stdout


def test_top_level_help_loads_no_pydantic():
    code = ("import sys, advisor.cli\n"
            "try:\n    advisor.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(repr(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic')[:3]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert p.stderr == "[]" and "recommend" in p.stdout


def test_no_import_cycle_between_the_cli_and_export():
    import ast
    from pathlib import Path

    def imports(path):
        tree = ast.parse(Path(path).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    assert "advisor.export.cli" not in imports("advisor/cli.py") or "advisor.cli" not in imports("advisor/export/cli.py")
    assert "advisor.cli" not in imports("advisor/export/cli.py")
