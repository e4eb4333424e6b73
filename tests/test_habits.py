"""The habits CI keeps: ruff (lint and import order) and a type checker over the four source folders.

They run inside the test suite, so the README's one test command (and .ci/run, which runs exactly
it) checks them too. mypy cannot follow an editable install's import hook (rules/, knowledge/ and
probes/ install as advisor.rules, advisor.knowledge and advisor.probes), so it reads a tree of
links that lays the folders out as the install does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("advisor", "rules", "knowledge", "probes")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_in_the_source_folders():
    out = _run(["ruff", "check", "--no-cache", *FOLDERS], ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_the_type_checker_finds_nothing_in_the_installed_layout(tmp_path):
    tree = tmp_path / "advisor"
    tree.mkdir()
    for entry in (ROOT / "advisor").iterdir():
        if entry.name != "__pycache__":
            os.symlink(entry, tree / entry.name)
    for name in ("rules", "knowledge", "probes"):
        os.symlink(ROOT / name, tree / name)
    out = _run(["mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
                "-p", "advisor"], tmp_path)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
