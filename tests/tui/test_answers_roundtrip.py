"""One set of answers, every front end: a file loaded in the TUI and saved again is unchanged,
field for field; the TUI and the CLI plan the same recommendation for the same file, this
machine's cached probe results included."""

import json

import pytest
from helpers import every_field_changed, one_4090, screen_text, settle, two_4090

from advisor.answers import load_answers, save_answers
from advisor.cli import main
from advisor.domain import CurveFit, ProbeResult, TimingPoint
from advisor.fields import answer_fields


async def walk_every_screen_and_save(pilot, path):
    """Hardware, the four question pages and the probe screen with Next only (each screen
    applies what it shows), then Save answers from the command palette."""
    app = pilot.app
    for _ in range(5):  # hardware, then questions pages 1-4
        await pilot.press("ctrl+n")
        await settle(pilot)
    assert app.screen.NAME == "probe", screen_text(app)
    await pilot.press("ctrl+p")
    await pilot.pause(0.1)
    await pilot.press(*list("Save answers"))
    await pilot.pause(0.3)
    await pilot.press("enter")
    await pilot.pause(0.1)
    await pilot.press("end", "ctrl+u", *list(str(path)), "enter")
    await settle(pilot)


def test_every_answer_field_round_trips_through_the_tui(make_app, run, tmp_path):
    original = every_field_changed()
    src = save_answers(original, tmp_path / "mine.toml")
    out = tmp_path / "saved.toml"
    app = make_app(load_answers(src), answers_path=str(src))

    async def go(pilot):
        await settle(pilot)
        await walk_every_screen_and_save(pilot, out)

    run(app, go)
    assert out.exists(), "Save answers wrote nothing"
    saved = load_answers(out)
    for f in answer_fields():  # field by field, so a failure names the field the TUI lost
        want, got = original, saved
        for part in f.path.split("."):
            want, got = getattr(want, part), getattr(got, part)
        assert got == want, f"{f.path}: saved {got!r}, file had {want!r}"
    assert saved == original


def _cache_a_probe(monkeypatch, tmp_path, detect=one_4090, model="llama3.2-1b"):
    """A cached measurement for the stand-in GPU, written the way `advisor probe` writes it."""
    from advisor.probes.cache import make_key, store

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    gpu = one_4090(None)[0].name
    result = ProbeResult(
        backend="transformers", model=model, gpu=gpu, attention="sdpa", dtype="float16",
        base_vram_mb=2600.0, fit=CurveFit(kind="linear", base_mb=2600.0, linear_mb_per_token=0.9),
        kv_bytes_per_token=32768.0,
        ttft=[TimingPoint(context_tokens=2048, ttft_ms=35.0, repetitions=5, rep0_ms=38.0)],
        decode_tok_s=120.0, measured_at="2025-02-01T00:00:00Z", duration_s=20.0)
    assert store(make_key(gpu, model, "transformers", "sdpa", "float16"), result) is not None
    # NVML stands in for the CLI as it does for the TUI: the same one RTX 4090
    import advisor.probes.hardware as nvml

    monkeypatch.setattr(nvml, "detect_gpus", detect)


def _cli_plan(capsys, path, *extra) -> dict:
    assert main(["recommend", "--answers", str(path), "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("text, detect, count", [
    # this machine's GPU (auto), with a cached probe of the model
    ('workload = "chat"\nconcurrency = 4\n[hardware]\ngpu = "auto"\n[model]\nname = "llama3.2-1b"\n',
     one_4090, 1),
    # a catalog GPU with less VRAM than the catalog's (the TUI once dropped vram_gb: 105K vs 26K)
    ('workload = "rag"\ncontext_tokens = 8192\n[hardware]\ngpu = "RTX 4090"\nvram_gb = 12\n'
     '[model]\nname = "qwen2.5-1.5b"\n', one_4090, 1),
    # gpus = N means N GPUs, here one of the two detected (the TUI and CLI once disagreed)
    ('workload = "chat"\nconcurrency = 16\n[hardware]\ngpu = "auto"\ngpus = 1\n', two_4090, 1),
    # gpus left out: every detected GPU of that model
    ('workload = "chat"\nconcurrency = 16\n[hardware]\ngpu = "auto"\n', two_4090, 2),
])
def test_the_tui_and_the_cli_plan_the_same_for_the_same_file(text, detect, count, make_app, run, tmp_path,
                                                             monkeypatch, capsys):
    _cache_a_probe(monkeypatch, tmp_path, detect)
    path = tmp_path / "answers.toml"
    path.write_text(text)
    cli = _cli_plan(capsys, path)
    assert cli["hardware"]["count"] == count
    if "llama3.2-1b" in text:  # the cached measurement is among the CLI's inputs, and changes its plan
        assert cli["probes"] is not None
        assert _cli_plan(capsys, path, "--no-cache")["probes"] is None
    app = make_app(load_answers(path), answers_path=str(path), detect_gpus=detect)

    async def go(pilot):
        await settle(pilot)
        for _ in range(5):  # through hardware and the questions, as a user would, to the probe
            await pilot.press("ctrl+n")
            await settle(pilot)
        await pilot.press("ctrl+n")  # probe -> advice, without probing here
        await settle(pilot, rounds=5)
        assert app.screen.NAME == "advice"
        head = cli["recommendation"]
        assert (f"RECOMMENDED {head['model']} on {head['backend']} at {head['quantization']}"
                in screen_text(app))

    run(app, go)
    tui = app.recommendation.model_dump(mode="json")
    assert tui == cli
