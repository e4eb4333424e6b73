"""Stub servers for running the exported scripts: each records its argv and environment.

`vllm`, `llama-server`, `docker`, `ollama` and `transformers` on PATH are small Python scripts that append one
JSON line per call to $STUB_LOG. The ollama stub behaves like a server per OLLAMA_HOST:
`ollama serve` marks the host up and stays running a moment (see the stub), `ollama list` succeeds
only for a host that is up, and `ollama show` reports the quantization in $STUB_QUANT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

STUB = r'''#!{python}
import json, os, sys
prog = os.path.basename(sys.argv[0])
args = sys.argv[1:]
env = {{k: v for k, v in os.environ.items() if k.startswith(("OLLAMA_", "CUDA_", "MODEL", "HOST"))}}
with open(os.environ["STUB_LOG"], "a", encoding="utf-8") as f:
    f.write(json.dumps({{"prog": prog, "argv": args, "env": env}}) + "\n")
if prog == "ollama":
    state = os.environ["STUB_STATE"]
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").replace(":", "_")
    up = os.path.join(state, "up-" + host)
    if args[:1] == ["serve"]:
        # a server: it stays up for STUB_SERVE_SECONDS (not holding the test's pipes), its pid in serve-pids;
        # STUB_SERVE_FAIL: it dies at once with an error; STUB_SERVE_NEVER_UP: it runs but never answers
        if os.environ.get("STUB_SERVE_FAIL"):
            sys.exit("Error: listen tcp " + os.environ.get("OLLAMA_HOST", "") + ": bind: address already in use")
        with open(os.path.join(state, "serve-pids"), "a") as f:
            f.write(str(os.getpid()) + "\n")
        if not os.environ.get("STUB_SERVE_NEVER_UP"):
            open(up, "w").close()
        import time
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        time.sleep(float(os.environ.get("STUB_SERVE_SECONDS", "0.2")))
    elif args[:1] == ["list"]:
        sys.exit(0 if os.path.exists(up) else 1)
    elif args[:1] == ["show"]:
        print("  Model\n    architecture    llama\n    quantization    " + os.environ.get("STUB_QUANT", "Q4_K_M"))
'''


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, log: Path, state: Path | None = None):
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.calls = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        pids = state / "serve-pids" if state is not None else None
        self.serve_pids = [int(x) for x in pids.read_text().split()] if pids is not None and pids.exists() else []

    def running_servers(self) -> list[int]:
        """The stub `ollama serve` processes of this run still alive 3 s after the script ended (then killed)."""
        def alive() -> list[int]:
            out = []
            for pid in self.serve_pids:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                out.append(pid)
            return out

        deadline = time.monotonic() + 3
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive()
        for pid in left:
            os.kill(pid, 9)
        return left

    def of(self, prog: str) -> list[dict]:
        return [c for c in self.calls if c["prog"] == prog]


@pytest.fixture
def run_script(tmp_path):
    """Run an exported shell script (in its own folder, with the other files beside it) against the stubs."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    for prog in ("vllm", "llama-server", "docker", "ollama", "transformers"):
        p = bin_dir / prog
        p.write_text(STUB.format(python=sys.executable))
        p.chmod(0o755)
    state = tmp_path / "stub-state"
    state.mkdir()

    def run(files: dict[str, str], script: str = "serve.sh", env: dict[str, str] | None = None,
            up: list[str] = (), signal_once_serving: int | None = None) -> Run:
        """signal_once_serving: send this signal to the script once an `ollama serve` it started is running
        (as Ctrl-C or `systemctl stop` would); the script then has 15 s to end."""
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        for name, body in files.items():
            (work / name).write_text(body)
        for host in up:
            (state / ("up-" + host.replace(":", "_"))).touch()
        log = tmp_path / "calls.jsonl"
        if log.exists():
            log.unlink()
        e = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "STUB_LOG": str(log),
             "STUB_STATE": str(state), **(env or {})}
        pids = state / "serve-pids"
        if pids.exists():
            pids.unlink()
        if signal_once_serving is None:
            proc = subprocess.run(["bash", script], cwd=work, env=e, capture_output=True, text=True, timeout=60)
            return Run(proc, log, state)
        p = subprocess.Popen(["bash", script], cwd=work, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not (pids.exists() and pids.read_text().strip()) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        p.send_signal(signal_once_serving)
        try:
            out, err = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += "\n[test: the script was still running 15 s after the signal]"
        return Run(subprocess.CompletedProcess(p.args, p.returncode, out, err), log, state)

    return run


@pytest.fixture
def exported_run(run_script):
    """export(r, target), then its serve.sh run against the stubs, which must exit 0: (snippet, run)."""
    from advisor.export import export

    def go(r, target: str):
        snippet = export(r, target)
        run = run_script(snippet.files)
        assert run.rc == 0, run.stderr
        return snippet, run

    return go


def bash_n(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)


def flag_values(argv: list[str]) -> dict[str, str]:
    """'--flag value' pairs (and '--switch' -> '') from an argv."""
    out, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[a] = argv[i + 1]
            i += 2
        else:
            out[a] = ""
            i += 1
    return out


# ------------------------------------------------------------------ Ollama's Modelfile parser, ported
_VALID = {"from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter", "message", "requires"}


def _unquote(s: str) -> tuple[str, bool]:
    if s.startswith('"""'):
        return (s[3:-3], True) if len(s) >= 6 and s.endswith('"""') else ("", False)
    if s.startswith('"'):
        return (s[1:-1], True) if len(s) >= 2 and s.endswith('"') else ("", False)
    return s, True


def _step(r: str, cs: str) -> tuple[str, str | None]:
    space, newline = r in " \t", r in "\r\n"
    if cs == "nil":
        if r == "#":
            return "comment", None
        return ("nil", None) if (space or newline) else ("name", r)
    if cs == "name":
        if r.isascii() and r.isalpha():
            return "name", r
        if space:
            return "value", None
        raise ValueError("invalid command")
    if cs == "value":
        return ("nil", r) if (newline or space) else ("value", r)
    if cs == "parameter":
        if (r.isascii() and r.isalnum()) or r == "_":
            return "parameter", r
        if space:
            return "value", None
        raise ValueError("unexpected EOF")
    if cs == "comment":
        return ("nil", None) if newline else ("comment", None)
    raise ValueError(cs)


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(command, argument) pairs as ollama/parser/parser.go ParseFile reads them."""
    cmds, cur, buf, name = [], "nil", "", ""
    for r in text:
        nxt, out = _step(r, cur)
        if nxt != cur:
            if cur == "name":
                s = buf.lower()
                if s not in _VALID:
                    raise ValueError(f"invalid command {buf!r}")
                if s == "parameter":
                    nxt = "parameter"
                name = "model" if s == "from" else s
            elif cur == "parameter":
                name = buf
            elif cur == "value":
                s, ok = _unquote(buf.strip())
                if not ok or r in " \t":
                    buf += r
                    continue
                cmds.append((name, s))
            buf, cur = "", nxt
        if out is not None and out.isprintable():
            buf += out
    if cur == "value":
        s, ok = _unquote(buf.strip())
        if not ok:
            raise ValueError("unterminated quote")
        cmds.append((name, s))
    elif cur not in ("nil", "comment"):
        raise ValueError("unexpected end")
    if not any(c == "model" for c, _ in cmds):
        raise ValueError("no FROM line")
    return cmds
