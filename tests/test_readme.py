"""The README's two set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", setup)


def test_the_readme_has_exactly_two_setup_commands():
    cmds = _commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("&& advisor") and "pip install ." in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _commands()[1] in ci.splitlines()


def test_the_defaults_the_readme_states_are_the_ones_the_code_uses():
    import re

    from advisor.domain import Answers

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("An example for a RAG service"):].split("```")[1]
    defaults = Answers().model_dump()
    section, checked = None, 0
    for line in block.splitlines():
        if line.startswith("["):
            section = line.strip("[] ").split("]")[0]
            continue
        m = re.match(r'(\w+) = .*\(default ([\w.]+)', line)
        if not m:
            continue
        key, stated = m.groups()
        value = (defaults[section] if section else defaults)[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert float(stated) == value, (section, key, stated, value)
        else:
            assert stated == str(value), (section, key, stated, value)
        checked += 1
    assert checked >= 10
