import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import StandInProbe, no_gpu, no_tags, stand_in_export  # noqa: E402


@pytest.fixture
def make_app():
    """An AdvisorApp with stand-ins for NVML, Ollama, the probe and the exporter."""
    from advisor.tui.app import AdvisorApp
    from advisor.tui.sources import plain_snippet_text

    def make(answers=None, **kw):
        kw.setdefault("detect_gpus", no_gpu)
        kw.setdefault("list_ollama_tags", no_tags)
        kw.setdefault("run_probe", StandInProbe())
        kw.setdefault("export", stand_in_export)
        kw.setdefault("render_snippet", plain_snippet_text)
        return AdvisorApp(answers, **kw)

    return make


@pytest.fixture
def run():
    """run(app, scenario): drive app headless at 80x24 with an async scenario(pilot)."""

    def go(app, scenario, size=(80, 24)):
        async def main():
            async with app.run_test(size=size) as pilot:
                await pilot.app.workers.wait_for_complete()
                await pilot.pause(0.05)
                await scenario(pilot)

        asyncio.run(main())

    return go
