"""The real app in a pseudo-terminal of 80x24 under xterm-256color, screen and tmux:
it paints the first screen and Ctrl+Q ends it with status 0 (no display needed)."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tui_first_paint.py"


def _bench():
    spec = importlib.util.spec_from_file_location("tui_first_paint", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("term", ["xterm-256color", "screen", "tmux-256color"])
def test_paints_and_quits_under(term):
    seconds, code = _bench().first_paint(term, timeout=30)
    assert code == 0
    assert seconds < 10  # the benchmark holds the 1.5 s target; this only proves it paints
