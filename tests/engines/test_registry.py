"""The one list of engines: knowledge/backends.toml rows, each an object of the class its `engine`
names, with the scheduler its `batching` names and the exporter its `export_target` names."""

from __future__ import annotations

import textwrap

import pytest

from advisor.answers import answers_from_dict
from advisor.cli import main
from advisor.engines import EXPORTERS, TARGETS, engine, engines
from advisor.errors import KnowledgeError
from advisor.export import export
from advisor.knowledge import load_knowledge
from advisor.load import ContinuousBatching, FixedSlots, OneAtATime
from advisor.recommend import recommend

ROW = """
[[rows]]
backend = "site-engine"
title = "our build"
engine = "{engine}"
batching = "{batching}"
family = "vllm"
export_target = "{target}"
probe_kinds = ["openai"]
calibration = "vllm"
pages_kv = true
quantizations = ["fp16"]
os = ["linux"]
kv_reserved_at_load = true
spills_silently_on_windows = false
source = "our own build"
"""


def _site(tmp_path, **kw):
    fields = {"engine": "vllm", "batching": "continuous", "target": "vllm", **kw}
    (tmp_path / "mine.toml").write_text('[meta]\ntable = "backends"\n' + textwrap.dedent(ROW.format(**fields)))
    return tmp_path


def test_every_bundled_row_is_an_engine_of_its_class_with_its_scheduler(k):
    kinds = {name: (type(e).__name__, type(e.scheduler(k.model("llama3.1-8b")))) for name, e in engines(k).items()}
    assert kinds["vllm"] == ("Vllm", ContinuousBatching)
    assert kinds["ollama"] == ("Ollama", FixedSlots)
    assert kinds["transformers"] == ("Transformers", OneAtATime)
    assert kinds["transformers-compiled"] == ("Transformers", OneAtATime)  # the same class, its own flags
    assert engine(k, "transformers-compiled").compiled_prefill and not engine(k, "transformers").compiled_prefill
    assert set(TARGETS) == set(EXPORTERS) == {"vllm", "ollama", "llamacpp", "transformers", "tgi"}
    assert engine(k, "transformers-serve").export_target == "transformers"


def test_a_sites_engine_row_is_planned_and_exported_by_its_class(tmp_path):
    k = load_knowledge(str(_site(tmp_path)))
    rec = recommend(answers_from_dict({"concurrency": 16, "hardware": {"gpu": "H100 80GB"},
                                       "model": {"name": "llama3.1-8b"},
                                       "constraints": {"backend": "site-engine"}}), knowledge=k)
    assert rec.recommendation.backend == "site-engine"
    script = export(rec, engine(k, "site-engine").export_target).files["serve.sh"]
    assert "vllm serve" in script and "--max-num-seqs 16" in script.replace("=", " ")


def test_a_sites_row_with_another_scheduler_gets_that_schedulers_load_model(tmp_path):
    k = load_knowledge(str(_site(tmp_path, batching="sequential")))
    e = engine(k, "site-engine")
    assert isinstance(e.scheduler(k.model("llama3.1-8b")), OneAtATime)


@pytest.mark.parametrize("field, value", [("engine", "vlm"), ("batching", "paged"), ("target", "kubernetes")])
def test_a_row_naming_what_the_advisor_lacks_is_one_line_naming_the_file_row_and_field(tmp_path, monkeypatch,
                                                                                       capsys, field, value):
    folder = _site(tmp_path, **{field: value})
    with pytest.raises(KnowledgeError) as e:
        engines(load_knowledge(str(folder)))
    assert "site-engine" in str(e.value) and repr(value) in str(e.value)
    monkeypatch.setenv("ADVISOR_KNOWLEDGE_DIR", str(folder))
    assert main(["recommend", "--gpu", "H100 80GB", "--model", "llama3.1-8b"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mine.toml" in err
    assert {"target": "export_target"}.get(field, field) in err
