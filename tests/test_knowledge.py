"""The knowledge base: every table loads, every row has a source, bad files fail with file/row/field."""

from __future__ import annotations

import pytest

from advisor.errors import KnowledgeError
from advisor.knowledge import load_knowledge

REQUIRED_MODELS = ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "llama3.2-1b", "llama3.2-3b",
                   "llama3.1-8b", "phi-2", "gpt2", "mistral-7b"]
REQUIRED_GPUS = ["RTX 2060", "RTX 3060", "RTX 4060", "RTX 4080", "RTX 4080 Laptop", "RTX 4090", "L4", "A10",
                 "A100 40GB", "A100 80GB", "H100 80GB", "H200 141GB"]


def test_every_row_of_every_table_names_its_source(k):
    for name, table in k.tables.items():
        assert table.rows, name
        for row in table.rows:
            assert row.source.strip(), f"{name}: {row}"


def test_catalogs_cover_the_models_and_gpus_users_ask_for(k):
    for m in REQUIRED_MODELS:
        spec = k.model(m)
        assert spec.layers > 0 and spec.kv_heads <= spec.attention_heads
    for g in REQUIRED_GPUS:
        assert k.gpu(g).bandwidth_gb_s > 0


def test_model_parameter_counts_agree_with_their_architecture(k):
    # The stored params_b must match what the config facts imply (within 3 %), or the
    # weights, FLOPs and bandwidth maths all inherit the error.
    # ModelSpec.architecture_params is the arithmetic a local config.json is counted with (experts,
    # MLA, plain vs gated MLPs included), so a mixture of experts is held to its total too.
    for m in k.models.values():
        assert m.architecture_params() / 1e9 == pytest.approx(m.params_b, rel=0.03), m.id


def test_gpu_lookup_accepts_nvml_names_and_suggests_close_matches(k):
    assert k.match_gpu("NVIDIA H100 80GB HBM3").name == "H100 80GB"
    assert k.match_gpu("NVIDIA GeForce RTX 4090").name == "RTX 4090"
    with pytest.raises(Exception) as e:
        k.gpu("RTX 4091")
    assert "did you mean" in str(e.value)


def _write(d, name, text):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")


def _write_table(d, table, rows):
    """A user's <table>.toml: the [meta] header naming `table`, then the `rows` TOML."""
    _write(d, f"{table}.toml", f'[meta]\ntable = "{table}"' + rows)


def test_user_rows_override_bundled_rows_by_key(tmp_path):
    _write_table(tmp_path, "thresholds", """
[[rows]]
key = "vram_alert_warning"
value = 0.7
unit = "fraction"
source = "our SRE policy"
""")
    k = load_knowledge(tmp_path)
    assert k.value("vram_alert_warning") == 0.7
    assert k.source("vram_alert_warning") == "our SRE policy"
    assert k.value("vram_alert_hard_stop") == 0.90  # untouched rows stay


def test_user_can_add_a_table_of_their_own(tmp_path):
    _write(tmp_path, "prices.toml", """
[meta]
table = "gpu_prices"
title = "What our GPUs cost"
[[rows]]
gpu = "RTX 4090"
usd_per_hour = 0.6
source = "our cloud bill, 2026-10"
""")
    k = load_knowledge(tmp_path)
    assert k.tables["gpu_prices"].rows[0].usd_per_hour == 0.6


def _bad_file_error(tmp_path, text: str, expected: str) -> KnowledgeError:
    """Loading a folder whose bad.toml is `text` fails in one line that names the file and `expected`."""
    _write(tmp_path, "bad.toml", text)
    with pytest.raises(KnowledgeError) as e:
        load_knowledge(tmp_path)
    msg = str(e.value)
    assert "bad.toml" in msg and expected in msg, msg
    assert "\n" not in msg
    return e.value


@pytest.mark.parametrize("text, expected", [
    ('[meta]\ntable = "gpus"\n[[rows]]\nname = "X"\nvram_gb = -1\nbandwidth_gb_s = 1\nfp16_tflops = 1\nsource = "s"\n',
     "table 'gpus' row 1 (name='X'): field 'vram_gb'"),
    ('[meta]\ntable = "gpus"\n[[rows]]\nname = "X"\nvram_gb = 8\nbandwidth_gb_s = 1\nfp16_tflops = 1\n',
     "field 'source'"),
    ('[meta]\ntable = "mine"\n[[rows]]\nx = 1\n', "table 'mine' row 1: field 'source'"),
    ('[meta\ntable = "gpus"\n', "not valid TOML"),
    ('[[rows]]\nx = 1\n', "missing [meta]"),
])
def test_a_malformed_user_file_fails_naming_file_row_and_field(tmp_path, text, expected):
    _bad_file_error(tmp_path, text, expected)


# ------------------------------------------------------------------ range checks (issue 15)
def _value_file(table, key, value):
    return (f'[meta]\ntable = "{table}"\n[[rows]]\nkey = "{key}"\nvalue = {value}\nunit = "u"\n'
            f'source = "ours"\n')


def _gpu_file(**over):
    row = {"name": '"Mine"', "vram_gb": "24", "bandwidth_gb_s": "1000", "fp16_tflops": "100", "source": '"ours"'}
    row.update(over)
    return '[meta]\ntable = "gpus"\n[[rows]]\n' + "".join(f"{k} = {v}\n" for k, v in row.items())


def _model_file(**over):
    row = {"id": '"MyModel"', "family": '"llama"', "hf_architecture": '"LlamaForCausalLM"', "params_b": "1.2",
           "layers": "16", "hidden_size": "2048", "attention_heads": "32", "kv_heads": "8", "head_dim": "64",
           "intermediate_size": "8192", "vocab_size": "128256", "tied_embeddings": "true",
           "max_context": "131072", "source": '"ours"'}
    row.update(over)
    return '[meta]\ntable = "models"\n[[rows]]\n' + "".join(f"{k} = {v}\n" for k, v in row.items())


@pytest.mark.parametrize("text, expected", [
    # an efficiency of 0 divided the roofline by zero
    (_value_file("calibration", "vllm.decode_bw_efficiency", "0"),
     "row 1 (key='vllm.decode_bw_efficiency'): field 'value': expected a number in [0.001, 1]"),
    (_value_file("calibration", "ollama.prefill_flops_efficiency", "1.5"), "expected a number in [0.001, 1]"),
    (_value_file("thresholds", "context_safety_margin", "nan"), "field 'value': NaN and infinity are not allowed"),
    (_value_file("thresholds", "cuda_context_overhead_gb", "-2"), "expected a number in [0, 4096]"),
    (_value_file("calibration", "ollama.compute_buffer_gb", "-0.5"), "expected a number in [0, 4096]"),
    (_value_file("scaling", "vllm_crossover_n", "3.5"), "expected a whole number in [1, 1000000]"),
    (_value_file("scaling", "amdahl_s.mymodel", "1.01"), "expected a number in [0, 1]"),
    (_value_file("thresholds", "ttft_good_ms", "1e+16"), "expected a number in [1, 10000000]"),
    (_value_file("thresholds", "vram_alert_warning", '"0.8"'), "field 'value': Input should be a valid number"),
    (_value_file("thresholds", "vram_alert_warning", "true"), "field 'value': Input should be a valid number"),
    (_value_file("thresholds", "my_own_key", "-inf"), "NaN and infinity are not allowed"),
    (_gpu_file(bandwidth_gb_s="inf"), "row 1 (name='Mine'): field 'bandwidth_gb_s': NaN and infinity"),
    (_gpu_file(vram_gb="1e9"), "field 'vram_gb': Input should be less than or equal to 4096"),
    (_gpu_file(vram_gb="0.024"), "field 'vram_gb': Input should be greater than or equal to 0.25"),
    ("[meta]\ntable = \"gpus\"\n[[rows]]\nvram_gb = 1" + "0" * 5000 + "\n", "not valid TOML (ValueError"),
    ("x = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML"),
    (_gpu_file(aliases="[nan]"), "field 'aliases[0]': NaN"),
    (_model_file(kv_heads="100000000"), "field 'kv_heads': Input should be less than or equal to 65536"),
    (_model_file(kv_heads="64"), "field 'kv_heads': kv_heads (64) must not exceed attention_heads (32)"),
    (_model_file(layers="-3"), "field 'layers': Input should be greater than or equal to 1"),
    (_model_file(layers='"16"'), "field 'layers': Input should be a valid integer"),
    (_model_file(mmlu="101"), "field 'mmlu'"),
    (_model_file(id='""'), "field 'id': String should have at least 1 character"),
    ('[meta]\ntable = "quantization"\n[[rows]]\nquant = "Q4_K_M"\nbits_per_weight = 4.8\ntier = "x"\n'
     'mmlu_delta_pp = 1\nrisk_tiers = []\nbackends = []\nsource = "s"\n', "field 'quant': Input should be 'fp16'"),
    ('[meta]\ntable = "workloads"\nunits = "GB"\n', "[meta] units must be a table of strings"),
    (_value_file("thresholds", "vram_alert_warning", "0.8") + '[[rows]]\nkey = "VRAM_alert_warning"\n'
     'value = 0.7\nunit = "u"\nsource = "s"\n', "row 2 (key='VRAM_alert_warning'): repeats key"),
    ('[meta]\ntable = "mine"\n[[rows]]\nx = nan\nsource = "s"\n', "table 'mine' row 1: field 'x': NaN"),
])
def test_out_of_range_knowledge_values_fail_naming_file_row_and_field(tmp_path, text, expected):
    assert _bad_file_error(tmp_path, text, expected).exit_code == 3


def test_every_bundled_key_value_row_has_a_declared_bound(k):
    # A new threshold or calibration key must say what range it lives in, not fall to "any finite number".
    from advisor.knowledge.schema import FINITE, value_bound

    for key in k._values:
        assert value_bound(key) is not FINITE, key
        assert value_bound(key).ok(k.value(key)), key


def test_values_at_the_edges_of_their_bounds_load(tmp_path):
    _write(tmp_path, "edges.toml", _value_file("calibration", "vllm.decode_bw_efficiency", "1")
           + '[[rows]]\nkey = "ollama.compute_buffer_gb"\nvalue = 0\nunit = "GB"\nsource = "s"\n')
    k = load_knowledge(tmp_path)
    assert k.value("vllm.decode_bw_efficiency") == 1 and k.value("ollama.compute_buffer_gb") == 0


def _cli(args, env_dir, timeout=60):
    import os
    import subprocess
    import sys

    env = {**os.environ, "ADVISOR_KNOWLEDGE_DIR": str(env_dir)}
    return subprocess.run([sys.executable, "-m", "advisor", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.mark.parametrize("what", ["missing", "file"])
def test_a_knowledge_dir_that_is_not_a_directory_is_one_line_not_ignored(tmp_path, monkeypatch, capsys, what):
    from advisor.cli import main

    target = tmp_path / "nowhere"
    if what == "file":
        target.write_text("not a folder\n")
    monkeypatch.setenv("ADVISOR_KNOWLEDGE_DIR", str(target))
    assert main(["recommend", "--gpu", "RTX 4090", "--no-cache"]) == 3
    err = capsys.readouterr().err.strip()
    assert "ADVISOR_KNOWLEDGE_DIR" in err and str(target) in err and len(err.splitlines()) == 1
    assert ("does not exist" if what == "missing" else "is not a directory") in err


def test_the_default_config_dir_may_be_absent(monkeypatch, tmp_path):
    monkeypatch.delenv("ADVISOR_KNOWLEDGE_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config-here"))
    assert load_knowledge().value("vram_alert_warning") == 0.85


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge", "directory"])
def test_a_knowledge_file_that_is_no_file_neither_hangs_nor_eats_memory(tmp_path, kind):
    import os

    d = tmp_path / "k"
    d.mkdir()
    p = d / "t.toml"
    if kind == "fifo":
        os.mkfifo(p)  # no writer: a plain open() would block forever
    elif kind == "dev-zero":
        p.symlink_to("/dev/zero")  # endless: a plain read() would fill the memory
    elif kind == "huge":
        p.write_text("# padding\n" * 500_000)  # 5 MB of comments
    else:
        p.mkdir()
    r = _cli(["knowledge"], d, timeout=30)
    assert r.returncode == 3, r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "t.toml" in line
    assert ("larger than 4 MiB" if kind == "huge" else "not a regular file") in line


def test_user_model_ids_are_case_insensitive_everywhere(tmp_path):
    _write(tmp_path, "models.toml", _model_file())
    _write(tmp_path, "compat.toml", '[meta]\ntable = "quant_compat"\n[[rows]]\nmodel = "MYMODEL"\n'
           'passes = ["q8_0"]\nfails = ["q4_k_m"]\nsource = "our eval"\n')
    k = load_knowledge(tmp_path)
    assert k.model("MyModel").id == k.model("mymodel").id == k.model(" MYMODEL ").id == "MyModel"
    assert k.compat.get("MyModel").source == "our eval"  # the compat row, keyed in other case, applies
    assert "MyModel" in k.models and "mymodel" in k.models


def test_a_user_row_replaces_the_bundled_one_whatever_its_case(tmp_path):
    _write(tmp_path, "models.toml", _model_file(id='"QWEN2.5-0.5B"'))
    k = load_knowledge(tmp_path)
    same = [m for m in k.models.values() if m.id.casefold() == "qwen2.5-0.5b"]
    assert len(same) == 1 and same[0].source == "ours"
    assert k.model("qwen2.5-0.5b").source == "ours"


def test_a_user_model_with_capitals_is_recommended_by_its_id(tmp_path, capsys, monkeypatch):
    import json

    from advisor.cli import main

    _write(tmp_path, "models.toml", _model_file())
    monkeypatch.setenv("ADVISOR_KNOWLEDGE_DIR", str(tmp_path))
    for name in ("MyModel", "mymodel"):
        assert main(["recommend", "--gpu", "RTX 4090", "--model", name, "--format", "json", "--no-cache"]) == 0
        assert json.loads(capsys.readouterr().out)["recommendation"]["model"] == "MyModel"


# ------------------------------------------------------------------ catalogs a serving engineer expects (issue 13)
SERVING_GPUS = ["RTX 3080", "RTX 3090", "RTX 4070", "RTX 4070 Ti", "RTX 5090", "RTX A6000", "RTX 6000 Ada", "L40S",
                "A10G", "H100 NVL", "H200 NVL", "A100 80GB PCIe", "A100 40GB PCIe", "H100 PCIe"]
SERVING_MODELS = ["llama3.1-70b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b", "mistral-small", "mixtral-8x7b",
                  "gemma-2-9b"]


@pytest.mark.parametrize("name", SERVING_GPUS)
def test_serving_gpus_have_every_column_from_a_named_source(k, name):
    g = k.gpu(name)
    assert g.vram_gb > 0 and g.bandwidth_gb_s > 0 and g.fp16_tflops > 0 and g.fp16_acc32_tflops
    assert g.compute_capability and g.architecture and g.source
    if g.compute_capability >= 8.9:  # Ada, Hopper, Blackwell run FP8
        assert g.fp8_tflops
    if g.name != "A10G":  # AWS publishes no INT8 figure for its A10G
        assert g.int8_tops and g.int8_tops >= g.fp16_tflops
    assert g.fp16_acc32_tflops <= g.fp16_tflops


def test_geforce_cards_halve_fp32_accumulate_and_datacenter_cards_do_not(k):
    for name in ("RTX 3080", "RTX 3090", "RTX 4070", "RTX 4070 Ti", "RTX 5090"):
        g = k.gpu(name)
        assert g.fp16_acc32_tflops == pytest.approx(g.fp16_tflops / 2, rel=0.01), name
    for name in ("RTX A6000", "RTX 6000 Ada", "L40S", "H100 NVL", "H200 NVL", "A100 80GB PCIe"):
        g = k.gpu(name)
        assert g.fp16_acc32_tflops == g.fp16_tflops, name


@pytest.mark.parametrize("nvml, row", [
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"), ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 40GB PCIe"), ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
    ("NVIDIA H100 80GB HBM3", "H100 80GB"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 141GB"), ("NVIDIA H200 NVL", "H200 NVL"), ("NVIDIA L40S", "L40S"), ("NVIDIA L4", "L4"),
    ("NVIDIA A10G", "A10G"), ("NVIDIA A10", "A10"), ("NVIDIA RTX A6000", "RTX A6000"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada"), ("NVIDIA GeForce RTX 4070 Ti", "RTX 4070 Ti"),
    ("NVIDIA GeForce RTX 4070", "RTX 4070"), ("NVIDIA GeForce RTX 5090", "RTX 5090"),
    ("NVIDIA GeForce RTX 3080", "RTX 3080"), ("NVIDIA GeForce RTX 3090", "RTX 3090"),
])
def test_nvml_names_land_on_their_own_form_factor(k, nvml, row):
    assert k.match_gpu(nvml).name == row


def test_a_pcie_a100_is_planned_with_pcie_bandwidth(k):
    pcie, sxm = k.match_gpu("NVIDIA A100 80GB PCIe"), k.match_gpu("NVIDIA A100-SXM4-80GB")
    assert pcie.bandwidth_gb_s < sxm.bandwidth_gb_s


@pytest.mark.parametrize("nvml", ["NVIDIA L40", "NVIDIA GeForce RTX 4070 Laptop GPU", "NVIDIA A1000"])
def test_a_card_only_a_prefix_matches_is_not_planned_as_that_card(k, nvml):
    # "L4" is a prefix of "L40", the desktop 4070 is not the laptop part: no row rather than a wrong one
    assert k.match_gpu(nvml) is None


@pytest.mark.parametrize("name", SERVING_MODELS)
def test_serving_models_carry_their_config_facts(k, name):
    m = k.model(name)
    assert m.hf_repo and m.ollama_tag and m.dtype == "bfloat16" and m.max_context >= 8192 and m.source
    assert m.mmlu is not None and 60 < m.mmlu < 90


def test_the_catalog_mixtral_is_a_mixture_of_experts(k):
    m = k.model("mixtral-8x7b")
    assert m.params_b == pytest.approx(46.7, rel=0.01)
    assert m.active_params / 1e9 == pytest.approx(12.9, rel=0.01)


def test_the_catalog_gemma_caps_half_its_layers_at_the_window(k):
    m = k.model("gemma-2-9b")
    assert (m.sliding_window, m.sliding_layers) == (4096, m.layers // 2)
    assert m.kv_bytes_for(8192) == pytest.approx(0.75 * m.kv_bytes_per_token() * 8192)


def test_a_model_row_whose_experts_do_not_add_up_fails_with_file_row_field(tmp_path):
    _write_table(tmp_path, "models", """
[[rows]]
id = "bad-moe"
family = "mixtral"
hf_architecture = "MixtralForCausalLM"
params_b = 46.7
layers = 32
hidden_size = 4096
attention_heads = 32
kv_heads = 8
head_dim = 128
intermediate_size = 14336
vocab_size = 32000
tied_embeddings = false
max_context = 32768
experts = 8
experts_active = 9
source = "test"
""")
    with pytest.raises(KnowledgeError) as e:
        load_knowledge(tmp_path)
    assert "bad-moe" in str(e.value) and "experts_active (9) must be 1 to experts (8)" in str(e.value)


def test_the_activation_constant_is_the_h100_fit(k):
    # runtime.activation_bytes_per_token is bench/calibrate/activation.py's least-squares fit over the H100
    # sweeps, rounded up; a row edited by hand away from the measurement fails here
    import importlib.util
    import math
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "calibrate" / "activation.py"
    spec = importlib.util.spec_from_file_location("fit_activation", path)
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    import json

    data = json.loads(fit.SRC.read_text())
    slopes = []
    for run in data["runs"]:
        sweep = run.get("sweep") or {}
        if run.get("attention") == "sdpa":
            m = k.model(run["model"])
            pts = [(p["context_tokens"], (p["peak_mb"] - sweep["base_vram_mb"]) * 2**20
                    - sweep["kv_bytes_per_token"] * p["context_tokens"]) for p in sweep["curve"] if p["peak_mb"]]
            _, slope = fit.line([n for n, _ in pts], [y for _, y in pts])
            slopes.append((slope, 2 * m.intermediate_size))
    a = sum(s * x for s, x in slopes) / sum(x * x for _, x in slopes)
    assert k.value("runtime.activation_bytes_per_token") == math.ceil(a * 10) / 10
    assert "activation-fit.md" in k.source("runtime.activation_bytes_per_token")
