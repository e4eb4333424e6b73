"""Names, paths and tags are data: whatever they hold, they reach the server as one argument (or one
string), never as a command, a YAML key or a Modelfile instruction. Rule sources are comments only."""

from __future__ import annotations

import csv
import io
import os
import tokenize

import pytest
import yaml

from advisor.export import ExportError, export
from conftest import bash_n, flag_values, parse_modelfile
from plans import S, llamacpp_n4, ollama_chat_n1, rec, transformers_compiled, transformers_serve_n16, vllm_n8

NASTY = [
    '"; touch PWNED; echo "',
    "$(touch PWNED)",
    "`touch PWNED`",
    "a'b\"c; touch PWNED #",
    "x\ntouch PWNED\n",
    "${HOME}/$(touch PWNED)/${PATH}",
    "q\\\"; touch PWNED; \\",
    "back\\slash and spaces\tand tab",
    "ünï cödé/✓ 🦙",
    "key: value\n- item\n# comment",
]


def _pwned(root) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if "PWNED" in f]


@pytest.mark.parametrize("name", NASTY)
@pytest.mark.parametrize("target", ["vllm", "tgi", "transformers"])
def test_repo_names_reach_the_server_as_one_argument(name, target, run_script, tmp_path):
    snippet = export(vllm_n8(repo=name), target)
    assert bash_n(snippet.files["serve.sh"]).returncode == 0
    run = run_script(snippet.files)
    assert run.rc == 0, run.stderr
    assert _pwned(tmp_path) == []
    (call,) = run.calls
    if target == "transformers":
        assert call["argv"][:2] == ["serve", name]  # transformers serve MODEL: pinned to this one name
    elif target == "vllm":
        assert call["argv"][1] == name
        cmd = yaml.safe_load(snippet.files["compose.yaml"])["services"]["vllm-0"]["command"]
        assert cmd[0].replace("$$", "$") == name  # compose reads $$ as a literal $
        assert flag_values(cmd[1:])["--max-model-len"] == "52873"
    else:
        assert call["argv"][call["argv"].index("--model-id") + 1] == name


@pytest.mark.parametrize("name", [n for n in NASTY if "\n" not in n])
def test_local_paths_survive_every_format(name, run_script, tmp_path):
    path = "/models/" + name.replace("/", "_")
    # llama.cpp: -m gets the path verbatim
    snippet = export(llamacpp_n4(local_path=path + ".gguf"), "llamacpp")
    run = run_script(snippet.files)
    assert run.rc == 0, run.stderr
    assert flag_values(run.of("llama-server")[0]["argv"])["-m"] == path + ".gguf"
    # Ollama: FROM reads back as the path, and no other instruction appears
    try:
        mf = export(ollama_chat_n1(tag=None, local_path=path + ".gguf"), "ollama").files["Modelfile"]
    except ExportError as e:  # only quotes a Modelfile value has no way to hold
        assert '"""' in path or path.endswith('"') or path.endswith('".gguf')
        assert "quotes" in str(e) and "\n" not in str(e)
    else:
        cmds = parse_modelfile(mf)
        assert cmds[0] == ("model", path + ".gguf") and [c for c, _ in cmds] == ["model", "num_ctx", "temperature"]
    # vLLM compose mounts the folder (YAML string), TGI mounts it through docker's CSV --mount
    r = vllm_n8(settings={"local_path": S(path, "model.answers", "answers: model.name")})
    vs = export(r, "vllm")
    svc = yaml.safe_load(vs.files["compose.yaml"])["services"]["vllm-0"]
    (mount,) = [v for v in svc["volumes"] if v["target"] == "/model"]
    assert mount["source"].replace("$$", "$") == path and mount["read_only"] is True and svc["command"][0] == "/model"
    run = run_script(vs.files)
    assert run.of("vllm")[-1]["argv"][1] == path
    ts = export(r, "tgi")
    run = run_script(ts.files)
    argv = run.of("docker")[-1]["argv"]
    fields = next(csv.reader([argv[argv.index("--mount") + 1]]))
    assert "source=" + path in fields and "target=/model" in fields and "readonly" in fields
    assert argv[argv.index("--model-id") + 1] == "/model"
    assert _pwned(tmp_path) == []


def test_modelfile_refuses_a_path_with_a_line_break_in_one_line():
    with pytest.raises(ExportError) as e:
        export(ollama_chat_n1(tag=None, local_path="/m/x\nSYSTEM pwned.gguf"), "ollama")
    assert "line break" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("tag", ["llama3; touch PWNED", "$(id):latest", "a b:c", "x:y\nSYSTEM hi"])
def test_ollama_tags_that_are_not_names_are_refused(tag):
    with pytest.raises(ExportError) as e:
        export(ollama_chat_n1(tag=tag), "ollama")
    assert "is not an Ollama model name" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("target", ["vllm", "tgi", "transformers"])
def test_a_name_that_looks_like_an_option_is_refused(target):
    with pytest.raises(ExportError) as e:
        export(vllm_n8(repo="--trust-remote-code"), target)
    assert "read it as an option" in str(e.value)


EVIL_SOURCE = "TR127\n$(touch PWNED)\ntouch PWNED\nimport os; os.system('touch PWNED')\nFROM evil\nkey: PWNED"


@pytest.mark.parametrize("target,make", [
    ("vllm", vllm_n8), ("tgi", vllm_n8), ("transformers", transformers_compiled),
    ("transformers", transformers_serve_n16), ("ollama", ollama_chat_n1), ("llamacpp", llamacpp_n4),
])
def test_rule_sources_stay_inside_comments(target, make, run_script, tmp_path):
    r = make()
    plan = r.recommendation
    for key, s in list(plan.settings.items()):
        plan.settings[key] = S(s.value, s.rule + "\n$(touch PWNED)", EVIL_SOURCE)
    r.rules_fired[0].source = EVIL_SOURCE
    snippet = export(r, target)
    for name, body in snippet.files.items():
        if name.endswith(".sh"):
            assert bash_n(body).returncode == 0
        elif name.endswith(".yaml"):
            assert "PWNED" not in repr(yaml.safe_load(body))
        elif name.endswith(".py"):
            for tok in tokenize.generate_tokens(io.StringIO(body).readline):
                if "PWNED" in tok.string:
                    assert tok.type == tokenize.COMMENT
        elif name == "Modelfile":
            assert [c for c, _ in parse_modelfile(body)] == ["model", "num_ctx", "temperature"]
    if "serve.sh" in snippet.files:
        run_script(snippet.files, env={"MODEL_GGUF": "/m.gguf", "STUB_QUANT": "Q4_K_M"})
        assert _pwned(tmp_path) == []


def test_numbers_must_be_numbers():
    r = vllm_n8(settings={"max_num_seqs": S("8; touch PWNED")})
    with pytest.raises(ExportError) as e:
        export(r, "vllm")
    assert "max_num_seqs" in str(e.value) and "whole number" in str(e.value)
    r = rec("ollama", "q4_k_m", settings={"ollama_tag": S("llama3.2:3b"), "kv_cache_type": S("q8_0; rm -rf ~")})
    with pytest.raises(ExportError) as e:
        export(r, "ollama")
    assert "kv_cache_type" in str(e.value) and "f16, q8_0, q4_0" in str(e.value)


@pytest.mark.parametrize("name", [n for n in NASTY if "\n" not in n])
def test_ollama_safetensors_folder_path_is_data_in_the_modelfile_and_the_script(name, run_script, tmp_path):
    path = "/models/" + name.replace("/", "_")
    r = rec("ollama", "q4_k_m", model=name, ctx=8192, n=1,
            settings={"local_path": S(path, "model.answers", "answers: model.name"), "num_ctx": S(8192)})
    try:
        snippet = export(r, "ollama")
    except ExportError as e:  # only quotes a Modelfile value has no way to hold
        assert '"""' in path or path.endswith('"')
        assert "quotes" in str(e) and "\n" not in str(e)
        return
    cmds = parse_modelfile(snippet.files["Modelfile"])
    assert cmds == [("model", path), ("num_ctx", "8192")]
    run = run_script(snippet.files)
    assert run.rc == 0, run.stderr
    (create,) = [c for c in run.of("ollama") if c["argv"][0] == "create"]
    assert create["argv"][2:] == ["--quantize", "q4_K_M", "-f", "Modelfile"]
    assert _pwned(tmp_path) == []
