"""Fuzz: `--out` paths a user (or a paste) can give: long names, trailing slashes, nested folders that
may not exist, names with spaces, quotes and non-ASCII, files already there, read-only folders.

Whatever the path, the write is all or nothing: either every file of the set is there with its
content (and nothing else new but the one folder asked for), or the export is refused in one short
line and the tree is exactly as it was. A rerun after a refusal meets no leftovers.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from advisor.export import ExportError, Snippet, write_files

_SEQ = itertools.count()
ROOT_IGNORES_MODES = os.name == "posix" and os.geteuid() == 0

SNIPPETS = [
    Snippet(target="transformers", files={"serve.py": "print('hi')\n"}),
    Snippet(target="ollama", files={"Modelfile": "FROM x\n", "ollama.env": "A=1\n", "serve.sh": "#!/bin/sh\n"}),
]

NAME_CHARS = st.sampled_from(list("abcXYZ019-_. ") + ["é", "日", "'", '"', "$", "`", ";", "\\", "~"])
NAME = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=12),
    st.integers(200, 300).map(lambda n: "n" * n),  # around NAME_MAX (255)
).filter(lambda s: s not in (".", "..") and s.strip() != "")


def _tree(root: Path) -> dict[str, bytes | None]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


@st.composite
def scenario(draw):
    depth = draw(st.integers(0, 3))
    parts = [draw(NAME) for _ in range(depth + 1)]
    existing = draw(st.integers(0, depth))  # how many leading folders exist already
    return {
        "parts": parts,
        "existing": existing,
        "slash": draw(st.booleans()),
        "snippet": draw(st.sampled_from(SNIPPETS)),
        "clash": draw(st.booleans()),  # one of the files is already there (when its folder is)
        "readonly": draw(st.booleans()) and not ROOT_IGNORES_MODES,
        "very_deep": draw(st.integers(0, 10)) == 0,  # a path past PATH_MAX
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sc=scenario())
def test_any_out_path_writes_the_whole_set_or_nothing(tmp_path_factory, sc):
    root = tmp_path_factory.mktemp(f"out{next(_SEQ)}")
    snippet = sc["snippet"]
    parts = sc["parts"] * (40 if sc["very_deep"] else 1)
    folder = root
    for name in parts[: sc["existing"]]:
        folder = folder / name
        try:
            folder.mkdir()
        except OSError:  # a name this filesystem will not take: then it does not exist
            break
    out = str(root.joinpath(*parts)) + ("/" if sc["slash"] else "")
    if sc["clash"] and os.path.isdir(out):
        (Path(out) / next(iter(snippet.files))).write_text("mine\n")
    if sc["readonly"]:
        for d in (root, *[p for p in Path(out).parents if str(p).startswith(str(root))]):
            if os.path.isdir(d):
                d.chmod(0o555)
    before = _tree(root)
    try:
        try:
            written = write_files(snippet, out)
        except ExportError as e:
            event("refused")
            msg = str(e)
            assert "\n" not in msg and len(msg) < 400 and msg.startswith("--out: "), msg
            assert e.exit_code == 2
            assert _tree(root) == before  # nothing written, nothing made, no temp file left
            return
    finally:
        for d, _dirs, _files in os.walk(root):
            os.chmod(d, 0o755)
    event("written")
    after = _tree(root)
    new = {p: c for p, c in after.items() if p not in before}
    files = {os.path.relpath(p, root): snippet.files[name] for p, name in zip(written, snippet.files)}
    assert len(written) == len(snippet.files)
    for rel, body in files.items():
        assert new.pop(rel) == (body if body.endswith("\n") else body + "\n").encode()
    assert all(c is None for c in new.values()) and len(new) <= 1  # at most the folder asked for
    assert all(before[p] == after[p] for p in before)  # nothing that was there changed
    if len(snippet.files) > 1 or sc["slash"]:
        assert all(Path(p).parent == Path(out.rstrip("/")) for p in written)


@pytest.mark.skipif(ROOT_IGNORES_MODES or os.name != "posix", reason="root writes into read-only folders")
def test_a_refusal_for_a_read_only_folder_does_not_block_the_rerun(tmp_path):
    d = tmp_path / "deploy"
    d.mkdir()
    d.chmod(0o555)
    with pytest.raises(ExportError, match="Permission denied"):
        write_files(SNIPPETS[1], str(d))
    d.chmod(0o755)
    assert [p.name for p in write_files(SNIPPETS[1], str(d))] == list(SNIPPETS[1].files)
