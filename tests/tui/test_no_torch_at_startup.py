"""torch and transformers load only when a probe starts, never at start-up.

Run in a fresh interpreter: the app starts headless with the real sources (NVML,
Ollama, recommend(), the exporters), visits every screen, and only then starts a
probe whose runner imports torch the way probes.runner does.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(r"""
    import asyncio, sys
    from advisor.domain import Answers, HardwareAnswers
    from advisor.tui.app import AdvisorApp

    HEAVY = ("torch", "transformers")

    def heavy():
        return sorted(m for m in HEAVY if m in sys.modules)

    def probe_that_imports_torch(model, **kw):
        import torch  # noqa: F401  (what the real runner does once a probe starts)
        raise RuntimeError("stand-in stops here")

    async def main():
        answers = Answers(hardware=HardwareAnswers(gpu="RTX 4090"))
        app = AdvisorApp(answers, run_probe=probe_that_imports_torch)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.workers.wait_for_complete()
            print("after start-up:", heavy())
            for name in ("questions", "probe", "advice", "playbook", "export", "hardware"):
                app.goto(name)
                await pilot.pause(0.05)
                await app.workers.wait_for_complete()
            print("after every screen:", heavy())
            app.goto("probe")
            await pilot.pause(0.05)
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause(0.05)
            print("after a probe started:", heavy())

    asyncio.run(main())
""")


def test_no_torch_or_transformers_until_a_probe_starts():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "after start-up: []" in lines, out.stdout
    assert "after every screen: []" in lines, out.stdout
    try:
        import importlib.util

        has_torch = importlib.util.find_spec("torch") is not None
    except Exception:
        has_torch = False
    if has_torch:  # the check can see an import when one happens
        assert "after a probe started: ['torch']" in lines, out.stdout
