"""The main screens at 80x24, as text, against reviewed golden files in snapshots/.

Regenerate after an intended change with
    ADVISOR_UPDATE_SNAPSHOTS=1 /tmp/venv/bin/python -m pytest tests/tui/test_snapshots.py
and review the diff of tests/tui/snapshots/ before committing it. Besides the
golden comparison, each test asserts what a user would notice: the step bar, the
key hints, and that the important line is whole at 80 columns.

The advice and export screens use a hand-made Recommendation so the golden files
follow the TUI, not the rules; the hardware catalog and playbook come from the
bundled knowledge.
"""

import pytest
from helpers import StandInProbe, check_snapshot, one_4090, screen_text, settle, wait_for_text

from advisor.domain import (
    Answers, HardwareAnswers, ModelAnswers, Plan, PlaybookRef, Predicted, Provenance, Recommendation,
    RuleFiring,
)
from advisor.tui.base import step_line


def plan(**kw) -> Plan:
    pred = Predicted(
        vram_gb=7.41, ttft_ms=212.0, decode_tok_s_per_user=41.5, total_tok_s=332.0, p95_latency_s=3.3,
        origins={
            "vram_gb": Provenance(origin="probe", source="probe on this GPU: base 2,978 MB + 0.350 MB/token"),
            "ttft_ms": Provenance(origin="knowledge", source="TR130 measurements (vLLM, N=8)"),
            "decode_tok_s_per_user": Provenance(origin="roofline", source="1008 GB/s / 3.1 GB read per token"),
            "total_tok_s": Provenance(origin="roofline", source="8 users x per-user rate"),
            "p95_latency_s": Provenance(origin="roofline", source="TTFT + 128 tokens at the per-user rate"),
        })
    base = dict(backend="vllm", quantization="fp16", model="qwen2.5-1.5b", max_context_tokens=16384,
                concurrency=8, predicted=pred)
    base.update(kw)
    return Plan(**base)


REC = Recommendation(
    recommendation=plan(),
    alternatives=[
        plan(backend="ollama", quantization="q4_k_m",
             lost_because=["N=8 >= 4: ollama lacks continuous batching", "policy: fp16 first for rag"]),
        plan(backend="transformers", lost_because=["p95 latency 9.1 s misses the 5 s target"]),
    ],
    playbooks=[PlaybookRef(id="H.1", title="Upgrading from Ollama to vLLM")],
    rules_fired=[
        RuleFiring(rule="backend.continuous-batching", source="TR130 crossover (Appendix J.2)",
                   because="N=8 >= 4: continuous batching shares each weight read"),
        RuleFiring(rule="context.budget", source="TR127 §14.3 (0.8 factor)",
                   because="safe context 16,384 tokens per sequence"),
    ],
    warnings=["predicted TTFT 212 ms at N=8 is good (200-1,000 ms) [TR127 §7]"],
    answers=Answers(workload="rag", concurrency=8, model=ModelAnswers(name="qwen2.5-1.5b"),
                    hardware=HardwareAnswers(gpu="RTX 4090")),
    hardware={"gpu": "RTX 4090", "count": 1, "vram_gb": 24.0, "os": "linux", "source": "catalog",
              "bandwidth_gb_s": 1008.0, "fp16_tflops": 165.2, "catalog_source": "NVIDIA RTX 4090 datasheet"},
)


def with_rec(app):
    app.update_state(recommendation=REC)


def common(app, name, text):
    lines = text.splitlines()
    assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
    assert lines[0].rstrip() == step_line(name).rstrip(), lines[0]
    assert "^q Quit" in lines[-1] and "^p palette" in lines[-1], lines[-1]


CASES = {
    "hardware-no-gpu": dict(kw={}, go=None),
    "hardware-detected": dict(kw={"detect_gpus": one_4090}, go=None),
    "questions-workload": dict(kw={}, go="questions"),
    "questions-load": dict(kw={}, go="questions", keys=("ctrl+n", "ctrl+n")),
    "probe-done": dict(kw={"detect_gpus": one_4090, "run_probe": StandInProbe()}, go="probe", keys=("ctrl+r",)),
    "advice": dict(kw={}, go="advice", rec=True),
    "playbook": dict(kw={}, go="playbook", rec=True),
    "export": dict(kw={}, go="export", rec=True),
}
MUST_SHOW = {
    "hardware-no-gpu": ["WARN no GPU here (NVML: no NVIDIA driver on this machine)", "Plan for: RTX 2060 (6 GB)",
                        "^n Next"],
    "hardware-detected": ["OK detected 1 GPU(s); catalog: RTX 4090",
                          " 0  NVIDIA GeForce RTX 4090  24.0 GB  2.5 GB  21.5 GB  1.5 GB",
                          "(*) this machine's GPUs",
                          "Plan for: this machine, NVIDIA GeForce RTX 4090 (24.0 GB, 1.5 GB other tenants)"],
    "questions-workload": ["Questions, page 1 of 4: Workload", "(*) chat", "( ) rag",
                           "F.3 chat: Conversational turns with history; decode sets perceived speed.",
                           "^n Next", "esc Back"],
    "questions-load": ["page 3 of 4: Load and service levels", "concurrency       1", "TTFT target ms", "(empty: the workload's)"],
    "probe-done": ["OK qwen2.5-1.5b on transformers; base 2,978 MB", "ceiling 24.0 GB",
                   "* measured  x skipped/OOM  . fit  = ceiling  - safe budget", "^r Run probe", "^x Cancel"],
    "advice": ["RECOMMENDED qwen2.5-1.5b on vllm at fp16, N=8, context up to 16,384 tokens",
               "VRAM per GPU                 7.41 GB  probe     (measured here)",
               "TTFT p95                      212 ms  knowledge (stored table)",
               "WARN predicted TTFT 212 ms at N=8 is good", "p Playbook", "e Export"],
    "playbook": ["H.1 Upgrading from Ollama to vLLM  (matches)", "Matching this recommendation: H.1"],
    "export": ["for qwen2.5-1.5b on vllm at fp16", "vllm serve qwen2.5-1.5b --max-model-len 16384",
               "c Copy", "s Save snippet", "a Save answers"],
}


@pytest.mark.parametrize("name", list(CASES))
def test_screen(name, make_app, run):
    case = CASES[name]
    app = make_app(REC.answers if case.get("rec") else None, **case["kw"])
    if case.get("rec"):
        with_rec(app)

    async def look(pilot):
        if case["go"]:
            app.goto(case["go"])
            await settle(pilot)
        for key in case.get("keys", ()):
            await pilot.press(key)
            await settle(pilot)
        text = await wait_for_text(pilot, MUST_SHOW[name])  # layout may lag a worker by a frame
        await pilot.pause(0.1)
        text = screen_text(app)
        common(app, app.screen.NAME, text)
        for want in MUST_SHOW[name]:
            assert want in text, f"{name}: {want!r} not on screen:\n{text}"
        check_snapshot(name, text)

    run(app, look)
