"""Stub servers for running the exported scripts: each records its argv and environment.

`vllm`, `llama-server`, `docker` and `ollama` on PATH are small Python scripts that append one
JSON line per call to $STUB_LOG. The ollama stub behaves like a server per OLLAMA_HOST:
`ollama serve` marks the host up, `ollama list` succeeds only for a host that is up, and
`ollama show` reports the quantization in $STUB_QUANT.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
        open(up, "w").close()
    elif args[:1] == ["list"]:
        sys.exit(0 if os.path.exists(up) else 1)
    elif args[:1] == ["show"]:
        print("  Model\n    architecture    llama\n    quantization    " + os.environ.get("STUB_QUANT", "Q4_K_M"))
'''


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, log: Path):
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.calls = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

    def of(self, prog: str) -> list[dict]:
        return [c for c in self.calls if c["prog"] == prog]


@pytest.fixture
def run_script(tmp_path):
    """Run an exported shell script (in its own folder, with the other files beside it) against the stubs."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    for prog in ("vllm", "llama-server", "docker", "ollama"):
        p = bin_dir / prog
        p.write_text(STUB.format(python=sys.executable))
        p.chmod(0o755)
    state = tmp_path / "stub-state"
    state.mkdir()

    def run(files: dict[str, str], script: str = "serve.sh", env: dict[str, str] | None = None,
            up: list[str] = ()) -> Run:
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
        proc = subprocess.run(["bash", script], cwd=work, env=e, capture_output=True, text=True, timeout=60)
        return Run(proc, log)

    return run


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
