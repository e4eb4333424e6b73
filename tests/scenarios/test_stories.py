"""User stories: what an engineer on each kind of box gets for each kind of work."""

from __future__ import annotations

import pytest

from advisor.answers import answers_from_dict
from advisor.recommend import recommend

WORKLOADS = ["rag", "summarization", "chat", "balanced", "codegen", "classification"]
GPUS = {"RTX 2060": 6, "RTX 3060": 12, "H100 80GB": 80}
CONTINUOUS = {"vllm", "tgi", "llamacpp"}


def advise(k, **answers):
    return recommend(answers_from_dict(answers), knowledge=k)


def fired(rec) -> set[str]:
    return {r.rule for r in rec.rules_fired}


@pytest.mark.parametrize("gpu", list(GPUS))
@pytest.mark.parametrize("risk", ["high", "moderate", "low"])
@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_workload_risk_and_gpu_gets_a_defensible_plan(k, gpu, risk, workload):
    w = k.workloads[workload]
    for n in (1, 2, 4, 8):
        ctx, out = w.typical_context_max // 2, w.typical_output_max // 2
        rec = advise(k, workload=workload, risk=risk, concurrency=n, context_tokens=ctx, output_tokens=out,
                     hardware={"gpu": gpu})
        p = rec.recommendation
        story = f"{workload}/{risk}/N={n} on {gpu}: {p and (p.model, p.backend, p.quantization)}"
        assert p is not None, story
        quant = k.quant[p.quantization]
        # never Q2_K; the quantization is allowed for the risk tier (P.1)
        assert p.quantization != "q2_k" and risk in quant.risk_tiers, story
        if risk == "high":
            assert p.quantization in ("fp16", "bf16", "q8_0", "int8"), story
        # it fits: the KV for the asked context and concurrency, under the hard stop
        assert p.max_context_tokens >= ctx + out, story
        assert p.predicted.vram_gb <= GPUS[gpu] * k.value("vram_alert_hard_stop"), story
        # the quality gate of the application holds after the quantization's loss
        model = k.model(p.model)
        if "quality.gate" not in fired(rec) and model.mmlu is not None:
            gate = next(g for g in k.gates if (g.risk == "high") if risk == "high") if risk == "high" else \
                next(g for g in k.gates if workload in g.workloads)
            if gate.min_mmlu is not None:
                assert model.mmlu - quant.mmlu_delta_pp >= gate.min_mmlu, story
        # from the crossover on, a backend that batches — or a warning saying why not
        if n >= k.value("vllm_crossover_n"):
            assert p.backend in CONTINUOUS or rec.warnings, story
        # every figure says where it came from; every alternative says why it lost
        assert {"vram_gb", "ttft_ms", "decode_tok_s_per_user", "total_tok_s"} <= set(p.predicted.origins)
        assert all(a.lost_because for a in rec.alternatives), story
        # playbooks: agents scaling from N=2, quality-critical work
        ids = {pb.id for pb in rec.playbooks}
        assert ("H.5" in ids) == (n >= 2), story
        assert ("H.3" in ids) == (risk == "high"), story
        # a plan that breaks a check says so
        breaks = [x for x in rec.warnings if "breaks" in x]
        assert len(breaks) == sum(1 for r in rec.rules_fired
                                  if r.rule.split(".")[0] in ("slo", "quality", "quantization", "backend", "scaling",
                                                              "context")
                                  and any(r.because in b for b in breaks)), story


def test_a_clinic_with_a_6gb_card_gets_full_precision_and_the_quality_playbook(k):
    rec = advise(k, workload="chat", risk="high", hardware={"gpu": "RTX 2060"})
    p = rec.recommendation
    assert p.quantization in ("fp16", "q8_0")
    assert k.model(p.model).mmlu >= 55  # the medical-legal gate, P.2
    assert "H.3" in {pb.id for pb in rec.playbooks}


def test_eight_rag_agents_on_an_h100_move_to_vllm(k):
    rec = advise(k, workload="rag", concurrency=8, context_tokens=8192, output_tokens=128,
                 current_backend="ollama", hardware={"gpu": "H100 80GB"})
    p = rec.recommendation
    assert p.backend == "vllm"
    assert {"H.1", "H.5"} <= {pb.id for pb in rec.playbooks}
    assert p.predicted.total_tok_s > 4 * p.predicted.decode_tok_s_per_user
    assert p.settings["max_num_seqs"].value == 8  # the concurrency limit
    # --max-model-len is the longest request the workload sends, with headroom, not the pool / N:
    # vLLM pages KV on demand, so a smaller cap would only reject longer requests.
    longest = p.settings["max_model_len"].value
    assert 8192 + 128 <= longest <= k.model(p.model).max_context
    assert longest < p.max_context_tokens * 8


def test_the_same_eight_agents_on_ollama_are_told_what_it_costs(k):
    rec = advise(k, workload="rag", concurrency=8, context_tokens=8192, output_tokens=128,
                 hardware={"gpu": "H100 80GB"}, constraints={"backend": "ollama"})
    assert rec.recommendation.backend == "ollama"
    text = " ".join(rec.warnings)
    assert "backend=ollama" in text and "continuous batching" in text and "Amdahl" in text


def test_vllm_on_windows_cannot_be_recommended_and_says_why(k):
    rec = advise(k, workload="chat", hardware={"gpu": "RTX 4080 Laptop", "os": "windows"},
                 constraints={"backend": "vllm"})
    # the nearest plan that runs: without the tie, saying why the tie cannot hold
    assert rec.recommendation is not None and rec.recommendation.backend != "vllm"
    assert rec.warnings[0].startswith("nearest plan: your constraint (backend=vllm) cannot run here")
    assert "does not run on windows" in rec.warnings[0]


def test_a_windows_laptop_near_its_budget_hears_about_the_silent_spill(k):
    base = dict(workload="summarization", model={"name": "qwen2.5-3b"},
                constraints={"backend": "transformers", "quantization": "fp16"},
                hardware={"gpu": "RTX 4080 Laptop", "os": "windows", "background_vram_gb": 1.5})
    fits = advise(k, **base, context_tokens=4096).recommendation
    near = int(fits.max_context_tokens * 0.95) - 256
    rec = advise(k, **base, context_tokens=near)
    assert rec.recommendation is not None
    assert "context.windows-spill" in fired(rec) and "H.2" in {pb.id for pb in rec.playbooks}
    too_long = advise(k, **base, context_tokens=fits.max_context_tokens + 1000)
    # the nearest plan keeps the model and backend at the longest context that fits, and says
    # why the asked one cannot run (the OS's failure mode) and what would keep it
    near_plan = too_long.recommendation
    assert near_plan is not None and near_plan.model == "qwen2.5-3b"
    assert near_plan.max_context_tokens < fits.max_context_tokens + 1000
    assert "silently spills" in too_long.warnings[0] and "KV cache at 8 bits" in too_long.warnings[0]
    # Linux runs a linear attention kernel (a longer budget) and fails past it with an OOM
    linux = {**base, "hardware": {**base["hardware"], "os": "linux"}}
    lin_fits = advise(k, **linux, context_tokens=4096).recommendation
    assert lin_fits.max_context_tokens > fits.max_context_tokens
    on_linux = advise(k, **linux, context_tokens=lin_fits.max_context_tokens + 1000)
    assert any("out-of-memory" in w for w in on_linux.warnings)


def test_a_7b_at_full_precision_splits_over_two_12gb_cards(k):
    rec = advise(k, workload="chat", risk="high", concurrency=4, model={"name": "mistral-7b"},
                 hardware={"gpu": "RTX 3060", "gpus": 2})
    p = rec.recommendation
    assert (p.backend, p.quantization, p.tensor_parallel) in {("vllm", "fp16", 2), ("tgi", "fp16", 2)}
    assert "scaling.tensor-parallel" in fired(rec)
    one = advise(k, workload="chat", risk="high", concurrency=4, model={"name": "mistral-7b"},
                 hardware={"gpu": "RTX 3060", "gpus": 1})
    assert one.recommendation is None or one.recommendation.quantization == "q8_0"


def test_a_nightly_batch_gets_enough_replicas_for_its_deadline(k):
    rec = advise(k, workload="summarization", concurrency=8, context_tokens=4096, output_tokens=256,
                 requests_per_day=400_000, deadline_hours=6, hardware={"gpu": "A100 80GB", "gpus": 4})
    p = rec.recommendation
    assert p.replicas > 1 and p.replicas * p.tensor_parallel <= 4
    assert "scaling.replicas" in fired(rec)
    small = advise(k, workload="summarization", concurrency=8, context_tokens=4096, output_tokens=256,
                   requests_per_day=1000, deadline_hours=6, hardware={"gpu": "A100 80GB", "gpus": 4})
    assert small.recommendation.replicas == 1


def test_a_user_tied_to_q2k_is_refused(k):
    rec = advise(k, workload="chat", hardware={"gpu": "RTX 4090"}, constraints={"quantization": "q2_k"})
    assert rec.recommendation is not None and rec.recommendation.quantization != "q2_k"
    assert rec.warnings[0].startswith("nearest plan: your constraint (quantization=q2_k) cannot run here")
    assert "Q2_K is prohibited" in rec.warnings[0]


def test_an_8b_model_at_high_risk_does_not_fit_a_6gb_card(k):
    rec = advise(k, workload="chat", risk="high", model={"name": "llama3.1-8b"}, hardware={"gpu": "RTX 2060"})
    assert rec.recommendation is None
    assert "cannot run on 1 x RTX 2060 within high-risk policy" in rec.warnings[0]
    instead = rec.alternatives[0]
    assert instead.model != "llama3.1-8b" and instead.quantization in ("fp16", "q8_0")


def test_when_no_model_is_named_the_largest_passing_model_wins(k):
    big = advise(k, workload="chat", hardware={"gpu": "RTX 4090"})
    win = k.model(big.recommendation.model)
    # every larger model the catalog offered lost for a reason (a check it fails), not by size
    for alt in big.alternatives:
        if k.model(alt.model).params_b > win.params_b:
            assert alt.lost_because and not alt.lost_because[0].startswith("smaller model"), alt
    assert win.params_b >= 7  # a 24 GB card holds a 7B+ model at some precision
    small = advise(k, workload="chat", hardware={"gpu": "RTX 2060"})
    assert k.model(small.recommendation.model).params_b < win.params_b


def test_a_local_model_directory_brings_the_new_model_playbook(k, tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
        "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True,
        "max_position_embeddings": 131072}))
    rec = advise(k, workload="chat", model={"name": str(tmp_path)}, hardware={"gpu": "RTX 4090"})
    assert rec.recommendation.model == tmp_path.name
    assert "H.4" in {pb.id for pb in rec.playbooks}
    assert rec.recommendation.settings["local_path"].value == str(tmp_path)


def test_other_tenants_memory_shrinks_the_budget(k):
    alone = advise(k, workload="chat", model={"name": "llama3.2-3b"}, hardware={"gpu": "RTX 3060"})
    shared = advise(k, workload="chat", model={"name": "llama3.2-3b"},
                    hardware={"gpu": "RTX 3060", "background_vram_gb": 4})
    assert shared.recommendation.max_context_tokens < alone.recommendation.max_context_tokens


def test_a_clinic_naming_a_model_below_the_gate_is_told_why_and_offered_the_catalogs_pick(k):
    rec = advise(k, workload="chat", risk="high", hardware={"gpu": "A10"}, model={"name": "llama3.2-1b"})
    assert rec.recommendation is None
    assert "llama3.2-1b breaks high-risk policy" in rec.no_plan_because
    assert "catalog's pick" in rec.no_plan_because
    pick = rec.alternatives[0]
    assert pick.model != "llama3.2-1b" and k.model(pick.model).mmlu >= 55  # passes the medical-legal gate
    from advisor.render import to_text

    assert to_text(rec).splitlines()[1].startswith("No recommendation: llama3.2-1b breaks high-risk policy")


def test_when_nothing_fits_the_reason_says_so(k):
    rec = advise(k, workload="chat", hardware={"gpu": "RTX 4090"}, model={"name": "llama3.1-8b"},
                 constraints={"quantization": "q2_k"})
    assert rec.recommendation is not None and rec.recommendation.model == "llama3.1-8b"
    assert "Q2_K is prohibited" in rec.warnings[0] and rec.no_plan_because == ""
    # only when nothing at all runs is there no plan, and then it says why
    none = advise(k, workload="chat", hardware={"gpu": "RTX 2060"}, model={"name": "llama3.1-8b"},
                  constraints={"backend": "vllm", "quantization": "fp16"}, context_tokens=120000)
    assert none.recommendation is not None or none.no_plan_because
