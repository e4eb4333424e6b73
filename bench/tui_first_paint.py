"""First paint of the TUI: process start -> the first screen drawn in an 80x24 terminal.

Run from the repository root, with the project installed (`pip install -e .`):

    python -m bench.tui_first_paint            # prints a table
    python -m bench.tui_first_paint --write    # also records bench/results/tui-first-paint.md

Each run starts `python -m advisor` (the same path as the `advisor` console
script: the CLI parses, then opens the TUI) in a pseudo-terminal of 80x24 with no
display attached, reads what the app writes, and stops the clock when the
hardware screen's title has been painted; then it presses Ctrl+Q and checks the
exit status. The median of several runs per TERM value is reported. Target:
under 1.5 s.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import pty
import re
import select
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
TERMS = ("xterm-256color", "screen", "tmux-256color")
MARK = "Hardware: which GPUs"
TARGET_S = 1.5
ANSI = re.compile(r"\x1b\[[0-9;?<>=$ ]*[A-Za-z~@]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Z0-9]|\x1b[=>78DEHMNOZc]")


def visible(raw: bytes) -> str:
    """Screen text with the escape sequences removed (cursor moves become nothing)."""
    return ANSI.sub("", raw.decode("utf-8", "replace"))


def spawn(term: str) -> tuple[subprocess.Popen, int]:
    """`python -m advisor` in an 80x24 pseudo-terminal under TERM=term: (the process, the pty's master side)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": term, "COLUMNS": "80", "LINES": "24"}
    env.pop("TEXTUAL", None)
    proc = subprocess.Popen([sys.executable, "-m", "advisor"], stdin=slave, stdout=slave, stderr=slave,
                            cwd=ROOT, env=env, close_fds=True, start_new_session=True)
    os.close(slave)
    return proc, master


def read_screen(master: int, proc: subprocess.Popen, until: float, on_mark) -> bytes:
    """What the app writes to the pty, until it has exited and gone quiet or time.perf_counter() passes
    `until`; `on_mark(output so far)` is called once, when MARK first shows."""
    buf, marked = b"", False
    while time.perf_counter() < until:
        r, _, _ = select.select([master], [], [], 0.05)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            if not marked and MARK in visible(buf):
                marked = True
                on_mark(buf)
        if proc.poll() is not None and not r:
            break
    return buf


def first_paint(term: str, timeout: float = 20.0) -> tuple[float, int]:
    """(seconds from spawn to MARK on screen, exit code after Ctrl+Q)."""
    t0 = time.perf_counter()
    proc, master = spawn(term)
    painted = None

    def mark(_buf: bytes) -> None:
        nonlocal painted
        painted = time.perf_counter() - t0
        os.write(master, b"\x11")  # Ctrl+Q

    try:
        buf = read_screen(master, proc, t0 + timeout, mark)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        # drain, so the child never blocks on a full pty
        while True:
            r, _, _ = select.select([master], [], [], 0)
            if not r:
                break
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
    finally:
        os.close(master)
    if painted is None:
        raise RuntimeError(f"TERM={term}: {MARK!r} never appeared; last output: {visible(buf)[-300:]!r}")
    return painted, code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="record bench/results/tui-first-paint.md")
    ap.add_argument("--runs", type=int, default=RUNS, help="timed runs per TERM (after one warm-up)")
    args = ap.parse_args(argv)
    write = args.write
    rows = []
    for term in TERMS:
        first_paint(term)  # warm the file cache (bytecode, the OS page cache)
        runs = [first_paint(term) for _ in range(args.runs)]
        times = [t for t, _ in runs]
        codes = sorted({c for _, c in runs})
        rows.append((term, statistics.median(times), min(times), max(times), codes))
    lines = [
        "# TUI first paint",
        "",
        "Process start (`python -m advisor`, as the `advisor` script) to the hardware screen painted,",
        f"in an 80x24 pseudo-terminal with no display; median of {args.runs} runs after one warm-up,",
        "then Ctrl+Q. Measured by `python -m bench.tui_first_paint --write`. Target: under "
        f"{TARGET_S} s.",
        "The knowledge tables load (and are checked) before the first paint, so that a broken",
        "table among the user's own is one line on stderr rather than a traceback inside the app.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        "",
        "| TERM | median s | min s | max s | exit code after Ctrl+Q | under target |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for term, med, lo, hi, codes in rows:
        lines.append(f"| {term} | {med:.3f} | {lo:.3f} | {hi:.3f} | {', '.join(map(str, codes))} | "
                     f"{'yes' if med < TARGET_S else 'NO'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        out = ROOT / "bench" / "results" / "tui-first-paint.md"
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    return 0 if all(med < TARGET_S and codes == [0] for _, med, _, _, codes in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
