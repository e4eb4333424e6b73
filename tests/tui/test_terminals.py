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


def test_a_kill_gives_the_terminal_back():
    """SIGTERM (a kill, a closed SSH session sends SIGHUP alike) while the TUI runs: it leaves as
    ctrl+q does, so the terminal is out of the alternate screen with mouse reporting off."""
    import os
    import signal
    import time

    bench = _bench()
    proc, master = bench.spawn("xterm-256color")
    painted_at = None

    def mark(buf: bytes) -> None:
        nonlocal painted_at
        painted_at = len(buf)
        proc.send_signal(signal.SIGTERM)

    try:
        buf = bench.read_screen(master, proc, time.perf_counter() + 30, mark)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert painted_at is not None, bench.visible(buf)[-500:]
    after = buf[painted_at:]
    assert code == 128 + signal.SIGTERM
    assert b"\x1b[?1049l" in after  # out of the alternate screen
    assert b"\x1b[?1000l" in after or b"\x1b[?1003l" in after  # mouse reporting off
