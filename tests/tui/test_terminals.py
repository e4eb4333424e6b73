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
    import select
    import signal
    import subprocess
    import sys
    import time

    bench = _bench()
    master, slave = bench.pty.openpty()
    bench.fcntl.ioctl(slave, bench.termios.TIOCSWINSZ, bench.struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "advisor"], stdin=slave, stdout=slave, stderr=slave,
                            cwd=bench.ROOT, env=env, close_fds=True, start_new_session=True)
    os.close(slave)
    buf, painted_at, end = b"", None, time.monotonic() + 30
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                if painted_at is None and bench.MARK in bench.visible(buf):
                    painted_at = len(buf)
                    proc.send_signal(signal.SIGTERM)
            if proc.poll() is not None and not r:
                break
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
