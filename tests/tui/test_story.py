"""The whole story, keyboard only: hardware, answers, probe (stand-in), advice, playbook,
export (copy, save, no silent overwrite), save answers, and reload them."""


from helpers import BASE_MB, StandInProbe, screen_text, settle

from advisor.answers import load_answers
from advisor.tui.app import AdvisorApp


async def clear_and_type(pilot, text):
    await pilot.press("end", "ctrl+u")
    await pilot.press(*list(text))


def test_story(make_app, run, tmp_path):
    probe = StandInProbe()
    app = make_app(run_probe=probe)
    snippet_path = tmp_path / "serve.sh"
    answers_path = tmp_path / "answers.toml"

    async def story(pilot):
        # 1 hardware: no GPU here, so we plan for a catalog GPU; the choice is said in words
        text = screen_text(app)
        assert "WARN no GPU here (NVML: no NVIDIA driver on this machine)" in text
        assert "Plan for: RTX 2060 (6 GB)" in text
        await pilot.press(*["down"] * 5)
        assert "Plan for: RTX 4090 (24 GB)" in screen_text(app)
        await pilot.press("ctrl+n")
        await settle(pilot)

        # 2 questions, page 1: the workload, with its Appendix F profile
        assert app.screen.NAME == "questions"
        assert app.answers.hardware.gpu == "RTX 4090"
        assert "F.3 chat: Conversational turns" in screen_text(app)
        await pilot.press("up", "up")  # the cursor shows each workload's profile before it is chosen
        assert "F.1 rag: Retrieved documents in, short answer out" in screen_text(app)
        await pilot.press("enter")  # Enter chooses rag and moves on
        await pilot.pause(0.05)
        # page 2: risk tier with examples; Enter keeps moderate and moves on
        text = screen_text(app)
        assert "page 2 of 4" in text and "(*) moderate  e.g. customer-facing chat" in text
        await pilot.press("enter")
        await pilot.pause(0.05)
        # page 3: numbers validated as you type; Next refuses a bad value
        await clear_and_type(pilot, "0")
        text = screen_text(app)
        assert "WARN a whole number from 1 to 4,096" in text
        await pilot.press("ctrl+n")
        assert "page 3 of 4" in screen_text(app)
        await clear_and_type(pilot, "8")
        assert "WARN" not in screen_text(app)
        await pilot.press("tab", "tab")  # past the think time (0: agents back to back)
        await clear_and_type(pilot, "8192")
        await pilot.press("tab")
        await clear_and_type(pilot, "128")
        await pilot.press("ctrl+n")
        # page 4: the model, from the catalog
        assert "page 4 of 4: Model" in screen_text(app)
        await pilot.press("down", "enter")
        await pilot.press("tab", "enter")
        await pilot.press(*list("llama3.2-1"))
        await pilot.press("enter")
        await pilot.pause(0.05)
        await pilot.press("ctrl+n")
        await settle(pilot)
        a = app.answers
        assert (a.workload, a.risk, a.concurrency, a.context_tokens, a.output_tokens) == \
            ("rag", "moderate", 8, 8192, 128)
        assert a.model.name == "llama3.2-1b"

        # 3 probe with the stand-in: bars per step, the live plot, a result the advice uses
        assert app.screen.NAME == "probe"
        await pilot.press("ctrl+r")
        await settle(pilot)
        text = screen_text(app)
        assert probe.calls == [dict(model="llama3.2-1b", backend="transformers", attention="sdpa", url=None)]
        assert f"OK llama3.2-1b on transformers; base {BASE_MB:,.0f} MB" in text
        for step in ("load", "curve", "ttft", "decode"):
            assert any(line.startswith(step) and line.endswith("OK done") for line in text.splitlines()), step
        assert "ceiling 24.0 GB" in text and "*" in text and "=====" in text
        assert len(app.probe_results) == 1

        # 4 advice from the real recommend(), with the probe among its inputs
        await pilot.press("ctrl+n")
        await settle(pilot)
        text = screen_text(app)
        rec = app.recommendation
        assert rec is not None and rec.recommendation is not None
        assert rec.recommendation.model == "llama3.2-1b"
        assert f"RECOMMENDED llama3.2-1b on {rec.recommendation.backend}" in text
        assert "for 1 x RTX 4090 (24 GB, linux, catalog); with probe results" in text

        # 5 playbook
        await pilot.press("p")
        await settle(pilot)
        assert app.screen.NAME == "playbook"
        pid = rec.playbooks[0].id if rec.playbooks else "H.1"
        assert pid in screen_text(app)

        # 6 export: copy (OSC 52), save, and never overwrite silently
        await pilot.press("e")
        await settle(pilot)
        exp = app.screen
        assert exp.NAME == "export"
        target = exp.target
        assert "llama3.2-1b" in exp.text
        await pilot.press("c")
        assert app._clipboard == exp.text

        if target != "vllm":  # the stand-in writes one file for vllm, two otherwise
            exp.query_one("#target-pick").value = "vllm"
            await settle(pilot)
        await pilot.press("s")
        await pilot.pause(0.05)
        await clear_and_type(pilot, str(snippet_path))
        await pilot.press("enter")
        await settle(pilot)
        assert snippet_path.read_text().startswith("vllm serve llama3.2-1b")
        snippet_path.write_text("mine\n")
        await pilot.press("s")
        await pilot.pause(0.05)
        await clear_and_type(pilot, str(snippet_path))
        await pilot.press("enter")
        await pilot.pause(0.05)
        text = screen_text(app)
        assert "already" in text and "exists. Overwrite it?" in text and "No, keep it (n)" in text
        await pilot.press("n")
        await settle(pilot)
        assert snippet_path.read_text() == "mine\n"
        await pilot.press("s")
        await pilot.pause(0.05)
        await clear_and_type(pilot, str(snippet_path))
        await pilot.press("enter", "y")
        await settle(pilot)
        assert snippet_path.read_text().startswith("vllm serve llama3.2-1b")

        # answers saved as TOML
        await pilot.press("a")
        await pilot.pause(0.05)
        await clear_and_type(pilot, str(answers_path))
        await pilot.press("enter")
        await settle(pilot)

    run(app, story)
    assert load_answers(answers_path) == app.answers

    # reload: the saved answers pre-fill the questionnaire
    again = make_app(load_answers(answers_path), start="questions")

    async def reload(pilot):
        text = screen_text(again)
        assert "(*) rag" in text and "( ) chat" in text
        await pilot.press("ctrl+n", "ctrl+n")
        text = screen_text(again)
        for line in ("concurrency       8", "context tokens    8192", "output tokens     128"):
            assert line in text, line
        await pilot.press("ctrl+n")
        assert "llama3.2-1b" in screen_text(again)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert again.answers == load_answers(answers_path)

    run(again, reload)


def test_run_rejects_a_bad_answers_file_before_the_app_starts(tmp_path, capsys, monkeypatch):
    from advisor.tui import app as tui

    bad = tmp_path / "bad.toml"
    bad.write_text('workload = "poetry"\n')
    monkeypatch.setattr(AdvisorApp, "run", lambda self: (_ for _ in ()).throw(AssertionError("started")))
    code = tui.run(str(bad))
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("advisor: error: ") and "workload" in err
    assert "Traceback" not in err
    assert tui.run(str(tmp_path / "missing.toml")) != 0


def test_run_passes_loaded_answers_to_the_app(tmp_path, monkeypatch):
    from advisor.answers import save_answers
    from advisor.domain import Answers
    from advisor.tui import app as tui

    path = save_answers(Answers(workload="codegen", concurrency=3), tmp_path / "a.toml")
    seen = {}
    monkeypatch.setattr(AdvisorApp, "run", lambda self: seen.setdefault("answers", self.answers))
    assert tui.run(str(path)) == 0
    assert seen["answers"].workload == "codegen" and seen["answers"].concurrency == 3
