"""Every target for the four recommendation shapes of the issue: valid files carrying the plan's values,
or one clear line saying why the target cannot express the plan."""

from __future__ import annotations

import signal

import pytest
import yaml

from advisor.domain import HardwareSummary
from advisor.errors import AdvisorError
from advisor.export import ExportError, export, render_text
from conftest import bash_n, flag_values, parse_modelfile
from plans import S, llamacpp_n4, ollama_chat_n1, rec, tgi_batch_3_replicas, vllm_n8, vllm_tp2

CASES = {
    "ollama-n1": ollama_chat_n1,
    "vllm-n8": vllm_n8,
    "vllm-tp2": vllm_tp2,
    "tgi-3-replicas": tgi_batch_3_replicas,
}
# what a user gets for each (plan, target): "ok", or the words the one-line refusal must contain
EXPECTED = {
    ("ollama-n1", "ollama"): "ok", ("ollama-n1", "llamacpp"): "ok",
    ("ollama-n1", "vllm"): "cannot serve quantization q4_k_m", ("ollama-n1", "tgi"): "cannot serve quantization q4_k_m",
    ("ollama-n1", "transformers"): "cannot serve quantization q4_k_m",
    ("vllm-n8", "vllm"): "ok", ("vllm-n8", "tgi"): "ok", ("vllm-n8", "transformers"): "ok",
    ("vllm-n8", "ollama"): "needs a library tag, a GGUF file or a Safetensors folder", ("vllm-n8", "llamacpp"): "ok",
    ("vllm-tp2", "vllm"): "ok", ("vllm-tp2", "tgi"): "ok", ("vllm-tp2", "transformers"): "cannot express tensor_parallel 2",
    ("vllm-tp2", "ollama"): "cannot express tensor_parallel 2", ("vllm-tp2", "llamacpp"): "cannot express tensor_parallel 2",
    ("tgi-3-replicas", "tgi"): "ok", ("tgi-3-replicas", "vllm"): "ok", ("tgi-3-replicas", "transformers"): "ok",
    ("tgi-3-replicas", "ollama"): "needs a library tag, a GGUF file or a Safetensors folder", ("tgi-3-replicas", "llamacpp"): "ok",
}


def check_files(snippet) -> None:
    for name, body in snippet.files.items():
        if name.endswith(".sh"):
            r = bash_n(body)
            assert r.returncode == 0, f"{name}: bash -n: {r.stderr}"
            assert body.startswith("#!/usr/bin/env bash\n")
        elif name.endswith(".yaml"):
            assert isinstance(yaml.safe_load(body), dict)
        elif name.endswith(".py"):
            compile(body, name, "exec")
        elif name == "Modelfile":
            parse_modelfile(body)


@pytest.mark.parametrize("case,target", sorted(EXPECTED))
def test_every_target_for_every_plan_is_valid_or_refused_in_one_line(case, target):
    expected = EXPECTED[(case, target)]
    r = CASES[case]()
    if expected == "ok":
        snippet = export(r, target)
        assert snippet.target == target and snippet.files
        check_files(snippet)
        text = render_text(snippet)
        for name in snippet.files:
            assert f"# ==> {name} <==" in text
    else:
        with pytest.raises(AdvisorError) as e:
            export(r, target)
        msg = str(e.value)
        assert expected in msg and "\n" not in msg
        assert target in msg or "ollama" in msg


def test_no_recommendation_says_why_in_one_line():
    r = rec("vllm", "fp16")
    r = r.model_copy(update={"recommendation": None, "warnings": ["nothing can run: no candidate fits 1 x RTX 2060"]})
    with pytest.raises(ExportError) as e:
        export(r, "vllm")
    assert "nothing to export" in str(e.value) and "RTX 2060" in str(e.value) and "\n" not in str(e.value)


def test_unknown_target_names_the_allowed_ones():
    with pytest.raises(AdvisorError) as e:
        export(vllm_n8(), "vllmm")
    assert "vllm, ollama, llamacpp, transformers, tgi" in str(e.value) and "did you mean 'vllm'" in str(e.value)


@pytest.mark.parametrize("quant,target,words", [
    ("fp8", "ollama", "cannot serve quantization fp8"),
    ("fp8", "transformers", "cannot serve quantization fp8"),
    ("q4_k_m", "tgi", "cannot serve quantization q4_k_m"),
    ("nf4", "vllm", "cannot serve quantization nf4"),
    ("awq", "llamacpp", "cannot serve quantization awq"),
])
def test_quantization_the_backend_lacks_is_refused_with_the_rule(quant, target, words):
    r = vllm_n8(quant=quant, settings={"ollama_tag": S("llama3.1:8b")})
    with pytest.raises(ExportError) as e:
        export(r, target)
    assert words in str(e.value) and "quantization.workload-default" in str(e.value)


# ------------------------------------------------------------------ vLLM
def test_vllm_n8_script_and_compose_carry_the_plan_values(exported_run):
    r = vllm_n8()
    snippet, run = exported_run(r, "vllm")
    (call,) = run.of("vllm")
    argv = call["argv"]
    assert argv[:2] == ["serve", "meta-llama/Llama-3.1-8B-Instruct"]
    f = flag_values(argv[2:])
    assert f["--max-model-len"] == "52873" and f["--max-num-seqs"] == "8"
    assert f["--gpu-memory-utilization"] == "0.9" and f["--dtype"] == "float16"
    assert f["--tensor-parallel-size"] == "1" and f["--host"] == "127.0.0.1" and f["--port"] == "8000"
    assert "CUDA_VISIBLE_DEVICES" not in call["env"]  # one replica: the user's own GPU choice stands

    svc = yaml.safe_load(snippet.files["compose.yaml"])["services"]
    assert list(svc) == ["vllm-0"]
    cmd = svc["vllm-0"]["command"]
    assert cmd[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert flag_values(cmd[1:]) == {"--max-model-len": "52873", "--gpu-memory-utilization": "0.9",
                                    "--max-num-seqs": "8", "--dtype": "float16", "--tensor-parallel-size": "1"}
    dev = svc["vllm-0"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["device_ids"] == ["0"] and dev["capabilities"] == ["gpu"]
    assert svc["vllm-0"]["ports"] == ["127.0.0.1:8000:8000"] and svc["vllm-0"]["ipc"] == "host"


def test_every_vllm_value_has_its_rule_beside_it():
    snippet = export(vllm_n8(), "vllm")
    lines = snippet.files["serve.sh"].splitlines()
    for flag, rule in [("--max-model-len", "context.budget"), ("--max-num-seqs", "scaling.concurrency"),
                       ("--gpu-memory-utilization", "context.gpu-memory-utilization"),
                       ("--dtype", "quantization.choice"), ("--tensor-parallel-size", "scaling.tensor-parallel")]:
        (line,) = [x for x in lines if x.strip().startswith(flag + " ")]
        assert f"rule {rule}" in line, line
    compose = snippet.files["compose.yaml"].splitlines()
    (line,) = [x for x in compose if x.strip() == '- "52873"  # max_model_len: rule context.budget (TR127 §14.3)']
    assert line


def test_vllm_tensor_parallel_two_asks_for_two_gpus(exported_run):
    snippet, run = exported_run(vllm_tp2(), "vllm")
    (call,) = run.of("vllm")
    assert flag_values(call["argv"][2:])["--tensor-parallel-size"] == "2"
    svc = yaml.safe_load(snippet.files["compose.yaml"])["services"]["vllm-0"]
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["0", "1"]
    assert flag_values(svc["command"][1:])["--dtype"] == "bfloat16"


def test_vllm_three_replicas_get_their_own_gpu_port_and_service(exported_run):
    r = rec("vllm", "fp16", model="qwen2.5-7b", ctx=8192, n=16, replicas=3,
            settings={"hf_repo": S("Qwen/Qwen2.5-7B-Instruct"), "max_model_len": S(8192), "max_num_seqs": S(16)})
    snippet, run = exported_run(r, "vllm")
    calls = run.of("vllm")
    got = sorted((c["env"]["CUDA_VISIBLE_DEVICES"], flag_values(c["argv"][2:])["--port"]) for c in calls)
    assert got == [("0", "8000"), ("1", "8001"), ("2", "8002")]
    svc = yaml.safe_load(snippet.files["compose.yaml"])["services"]
    assert [s["ports"][0] for s in svc.values()] == ["127.0.0.1:8000:8000", "127.0.0.1:8001:8000", "127.0.0.1:8002:8000"]
    assert [s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for s in svc.values()] == [["0"], ["1"], ["2"]]
    note = " ".join(snippet.notes)
    assert "3 replicas" in note and "least_conn" in note and "8000, 8001, 8002" in note
    # the plan for vLLM carries no gpu_memory_utilization here: the user is told what vLLM does instead
    assert any("gpu_memory_utilization is not in this plan" in n for n in snippet.notes)


def test_vllm_pre_quantized_awq_passes_quantization_and_warns_about_the_checkpoint(run_script):
    snippet = export(vllm_n8(quant="awq"), "vllm")
    (call,) = run_script(snippet.files).of("vllm")
    f = flag_values(call["argv"][2:])
    assert f["--quantization"] == "awq" and f["--dtype"] == "auto"
    assert any("AWQ" in n and "checkpoint" in n for n in snippet.notes)


# ------------------------------------------------------------------ TGI
def test_tgi_three_replicas_batch(exported_run):
    snippet, run = exported_run(tgi_batch_3_replicas(), "tgi")
    calls = run.of("docker")
    assert len(calls) == 3
    seen = []
    for c in calls:
        argv = c["argv"]
        assert argv[0] == "run"
        gpus = argv[argv.index("--gpus") + 1]
        port = argv[argv.index("-p") + 1]
        image = argv.index("ghcr.io/huggingface/text-generation-inference:3.3.5")
        f = flag_values(argv[image + 1:])
        assert f == {"--model-id": "Qwen/Qwen2.5-7B-Instruct", "--max-input-tokens": "7936", "--max-total-tokens": "8192",
                     "--max-concurrent-requests": "16", "--cuda-memory-fraction": "0.85", "--dtype": "float16",
                     "--num-shard": "1"}
        seen.append((gpus, port))
    assert sorted(seen) == [('"device=0"', "127.0.0.1:8080:80"), ('"device=1"', "127.0.0.1:8081:80"),
                            ('"device=2"', "127.0.0.1:8082:80")]
    assert any("least_conn" in n for n in snippet.notes)


def test_tgi_tensor_parallel_shards_over_the_named_gpus(run_script):
    snippet = export(vllm_tp2(), "tgi")
    (call,) = run_script(snippet.files).of("docker")
    argv = call["argv"]
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'
    assert flag_values(argv)["--num-shard"] == "2"
    # a plan made for vLLM has no prompt limit for TGI: the user is told, nothing is invented
    assert "--max-input-tokens" not in argv
    assert any("max_input_tokens is not in this plan" in n for n in snippet.notes)


def test_tgi_quantize_never_comes_with_dtype(run_script):
    for quant, flag in [("nf4", "bitsandbytes-nf4"), ("int8", "bitsandbytes"), ("fp8", "fp8"), ("gptq", "gptq")]:
        snippet = export(vllm_n8(quant=quant), "tgi")
        (call,) = run_script(snippet.files).of("docker")
        f = flag_values(call["argv"])
        assert f["--quantize"] == flag and "--dtype" not in f


# ------------------------------------------------------------------ Ollama
def test_ollama_n1_modelfile_env_and_script(run_script):
    snippet = export(ollama_chat_n1(), "ollama")
    assert set(snippet.files) == {"Modelfile", "ollama.env", "serve.sh"}
    cmds = parse_modelfile(snippet.files["Modelfile"])
    assert cmds == [("model", "llama3.2:3b"), ("num_ctx", "32768"), ("temperature", "0.7")]
    env = dict(line.split("=", 1) for line in snippet.files["ollama.env"].splitlines() if line and not line.startswith("#"))
    assert env == {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "q8_0",
                   "OLLAMA_MAX_LOADED_MODELS": "1", "OLLAMA_HOST": "127.0.0.1:11434"}

    run = run_script(snippet.files, env={"STUB_QUANT": "Q4_K_M"})
    assert run.rc == 0, run.stderr
    verbs = [c["argv"][0] for c in run.of("ollama")]
    assert verbs.index("serve") < verbs.index("pull") < verbs.index("show") < verbs.index("create") < verbs.index("run")
    (serve,) = [c for c in run.of("ollama") if c["argv"][0] == "serve"]
    assert {k: serve["env"][k] for k in ("OLLAMA_NUM_PARALLEL", "OLLAMA_FLASH_ATTENTION", "OLLAMA_KV_CACHE_TYPE")} == \
        {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "q8_0"}
    (create,) = [c for c in run.of("ollama") if c["argv"][0] == "create"]
    assert create["argv"] == ["create", "advisor-llama3.2-3b-q4_k_m", "-f", "Modelfile"]
    (runc,) = [c for c in run.of("ollama") if c["argv"][0] == "run"]
    assert runc["argv"] == ["run", "advisor-llama3.2-3b-q4_k_m", ""]


def test_ollama_refuses_a_tag_of_another_quantization(run_script):
    snippet = export(ollama_chat_n1(), "ollama")
    run = run_script(snippet.files, env={"STUB_QUANT": "Q8_0"})
    assert run.rc != 0
    assert "is not Q4_K_M" in run.stderr
    assert not [c for c in run.of("ollama") if c["argv"][0] == "create"]


def test_ollama_will_not_reuse_a_running_server_that_lacks_the_settings(run_script):
    snippet = export(ollama_chat_n1(), "ollama")
    run = run_script(snippet.files, up=["127.0.0.1:11434"])
    assert run.rc == 1 and "already answers on 127.0.0.1:11434" in run.stderr
    assert not [c for c in run.of("ollama") if c["argv"][0] == "serve"]


def test_ollama_local_gguf_is_from_and_skips_the_tag_check(run_script, tmp_path):
    snippet = export(ollama_chat_n1(tag=None, local_path="/models/My Model Q4.gguf"), "ollama")
    assert parse_modelfile(snippet.files["Modelfile"])[0] == ("model", "/models/My Model Q4.gguf")
    run = run_script(snippet.files)
    assert run.rc == 0, run.stderr
    assert not [c for c in run.of("ollama") if c["argv"][0] in ("pull", "show")]


def test_ollama_replicas_one_server_per_gpu(exported_run):
    r = rec("ollama", "q4_k_m", model="llama3.2-3b", ctx=8192, n=2, replicas=2,
            settings={"ollama_tag": S("llama3.2:3b"), "num_ctx": S(8192), "num_parallel": S(2)})
    snippet, run = exported_run(r, "ollama")
    serves = sorted((c["env"]["OLLAMA_HOST"], c["env"]["CUDA_VISIBLE_DEVICES"]) for c in run.of("ollama") if c["argv"][0] == "serve")
    assert serves == [("127.0.0.1:11434", "0"), ("127.0.0.1:11435", "1")]
    loads = sorted(c["env"]["OLLAMA_HOST"] for c in run.of("ollama") if c["argv"][0] == "run")
    assert loads == ["127.0.0.1:11434", "127.0.0.1:11435"]
    assert any("11434, 11435" in n for n in snippet.notes)


# ------------------------------------------------------------------ llama.cpp
def test_llamacpp_flags_round_trip(exported_run):
    snippet, run = exported_run(llamacpp_n4(), "llamacpp")
    (call,) = run.of("llama-server")
    assert flag_values(call["argv"]) == {
        "--host": "127.0.0.1", "--port": "8080", "-m": "/models/llama-3.2-3b-Q5_K_M.gguf", "--ctx-size": "65536",
        "--n-gpu-layers": "999", "--parallel": "4", "--flash-attn": "on", "--cache-type-k": "f16", "--cache-type-v": "f16"}


def test_llamacpp_from_an_ollama_plan_needs_the_gguf_and_reserves_what_ollama_would(run_script):
    r = ollama_chat_n1()
    r.recommendation.settings["num_parallel"] = S(2, "scaling.concurrency", "answers")
    snippet = export(r, "llamacpp")
    missing = run_script(snippet.files)
    assert missing.rc != 0 and "set MODEL_GGUF" in missing.stderr and not missing.of("llama-server")
    run = run_script(snippet.files, env={"MODEL_GGUF": "/data/llama3.2-3b-q4_k_m.gguf"})
    (call,) = run.of("llama-server")
    f = flag_values(call["argv"])
    assert f["-m"] == "/data/llama3.2-3b-q4_k_m.gguf"
    assert f["--ctx-size"] == str(32768 * 2) and f["--parallel"] == "2"
    assert f["--cache-type-k"] == f["--cache-type-v"] == "q8_0"
    assert "--n-gpu-layers" not in f and any("gpu_layers is not in this plan" in n for n in snippet.notes)


# ------------------------------------------------------------------ Ollama: the servers live and die with serve.sh
def test_ollama_servers_stop_when_the_quantization_check_fails(run_script):
    """A failed check ends serve.sh; the server it started must not stay behind holding the GPU and the port
    (a second run would then refuse with 'already answers')."""
    snippet = export(ollama_chat_n1(), "ollama")
    run = run_script(snippet.files, env={"STUB_QUANT": "Q8_0", "STUB_SERVE_SECONDS": "30"})
    assert run.rc == 1 and "is not Q4_K_M" in run.stderr
    assert run.serve_pids, "serve.sh started no server"
    assert run.running_servers() == []


def test_ollama_server_that_cannot_start_ends_the_script_with_its_reason(run_script):
    snippet = export(ollama_chat_n1(), "ollama")
    run = run_script(snippet.files, env={"STUB_SERVE_FAIL": "1"})
    assert run.rc == 1
    assert "address already in use" in run.stderr
    assert "ollama serve on 127.0.0.1:11434 exited before it answered" in run.stderr
    assert not [c for c in run.of("ollama") if c["argv"][0] in ("pull", "create", "run")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ollama_script_interrupted_while_waiting_for_its_servers_stops_them_and_ends(run_script, sig):
    r = rec("ollama", "q4_k_m", model="llama3.2-3b", ctx=8192, n=2, replicas=2,
            settings={"ollama_tag": S("llama3.2:3b"), "num_ctx": S(8192), "num_parallel": S(2)})
    snippet = export(r, "ollama")
    run = run_script(snippet.files, env={"STUB_SERVE_NEVER_UP": "1", "STUB_SERVE_SECONDS": "30"},
                     signal_once_serving=sig)
    assert "still running 15 s after the signal" not in run.stderr
    assert run.rc != 0
    assert len(run.serve_pids) == 2 and run.running_servers() == []


# ------------------------------------------------------------------ Ollama: a local Safetensors folder
def ollama_folder_plan(quant, folder="/models/My Llama 3B"):
    return rec("ollama", quant, model="My Llama 3B", ctx=16384, n=2,
               settings={"local_path": S(folder, "model.answers", "answers: model.name"),
                         "num_ctx": S(16384, "context.budget", "TR127"), "num_parallel": S(2, "scaling.concurrency", "answers")})


@pytest.mark.parametrize("quant,flag", [("q4_k_m", ["--quantize", "q4_K_M"]), ("q8_0", ["--quantize", "q8_0"]), ("fp16", [])])
def test_ollama_imports_a_safetensors_folder_at_the_plans_quantization(run_script, quant, flag):
    """The advisor recommends Ollama for a local HF folder; its export must not refuse the plan's own backend."""
    snippet = export(ollama_folder_plan(quant), "ollama")
    assert parse_modelfile(snippet.files["Modelfile"])[:2] == [("model", "/models/My Llama 3B"), ("num_ctx", "16384")]
    run = run_script(snippet.files)
    assert run.rc == 0, run.stderr
    (create,) = [c for c in run.of("ollama") if c["argv"][0] == "create"]
    name = create["argv"][1]
    assert create["argv"] == ["create", name, *flag, "-f", "Modelfile"]
    assert not [c for c in run.of("ollama") if c["argv"][0] in ("pull", "show")]  # nothing to download or check
    if flag:
        line = next(x for x in snippet.files["serve.sh"].splitlines() if " ollama create " in x)
        assert "quantization: rule quantization.workload-default" in line


def test_ollama_folder_at_a_quantization_ollama_cannot_make_says_how_to_get_it():
    with pytest.raises(ExportError) as e:
        export(ollama_folder_plan("q5_k_m"), "ollama")
    msg = str(e.value)
    assert "\n" not in msg
    assert "q8_0 or q4_K_M only" in msg and "q5_k_m" in msg and "Q5_K_M GGUF" in msg and "llama-quantize" in msg


# ------------------------------------------------------------------ a plan for Windows
def windows(make):
    r = make()
    hw = HardwareSummary(source="catalog", gpu="RTX 4080 Laptop", count=1, vram_gb=12.0, os="windows",
                         bandwidth_gb_s=432.0, fp16_tflops=98.0, catalog_source="catalog")
    return r.model_copy(update={"hardware": hw})


def test_ollama_env_for_a_windows_plan_says_how_the_windows_app_gets_the_settings():
    snippet = export(windows(ollama_chat_n1), "ollama")
    lines = snippet.files["ollama.env"].splitlines()
    env = dict(x.split("=", 1) for x in lines if x and not x.startswith("#"))
    setx = dict(x.split()[2:4] for x in lines if x.startswith("#   setx "))
    assert setx == env  # every server setting, with the same value, as a Windows user variable
    assert not any("systemctl" in x for x in lines)
    assert any("Git Bash or WSL" in n for n in snippet.notes)


@pytest.mark.parametrize("target,make,words", [
    ("vllm", vllm_n8, "vLLM has no Windows build; run serve.sh inside WSL2"),
    ("tgi", vllm_n8, "run serve.sh inside WSL2 with Docker Desktop"),
    ("llamacpp", ollama_chat_n1, "run it from Git Bash (llama-server.exe takes the same flags) or WSL"),
])
def test_shell_targets_for_a_windows_plan_say_where_the_bash_script_runs(target, make, words):
    assert any(words in n for n in export(windows(make), target).notes)
    linux = export(make(), target)
    assert not any("Windows" in n for n in linux.notes)
    assert "setx" not in render_text(linux)


def test_tgi_concurrency_limit_says_that_tgi_refuses_rather_than_queues():
    """vLLM queues requests past --max-num-seqs; TGI answers 429 past --max-concurrent-requests. The user must be told."""
    serve = export(tgi_batch_3_replicas(), "tgi").files["serve.sh"]
    (line,) = [x for x in serve.splitlines() if x.strip().startswith("--max-concurrent-requests")]
    assert line.split("#")[0].split() == ["--max-concurrent-requests", "16"]
    assert "rule scaling.concurrency" in line and "429" in line


def test_vllm_local_folder_is_served_under_one_name_by_script_and_compose(exported_run):
    folder = "/models/My Llama"
    r = vllm_n8(settings={"local_path": S(folder, "model.answers", "answers: model.name")})
    r.recommendation.settings.pop("hf_repo")
    snippet, run = exported_run(r, "vllm")
    (call,) = run.of("vllm")
    assert call["argv"][:2] == ["serve", folder]  # the script serves the folder under its path
    cmd = yaml.safe_load(snippet.files["compose.yaml"])["services"]["vllm-0"]["command"]
    assert cmd[0] == "/model"  # the folder as mounted in the container
    assert cmd[cmd.index("--served-model-name") + 1] == folder  # the name clients send, as with serve.sh
