"""`--out`: the files of one export are written as a set (all or none), never over an existing file,
into folders that exist; every refusal is one line (exit 2) and leaves nothing behind, so a rerun works."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from advisor.cli import main
from advisor.export import ExportError, Snippet, write_files

# an Ollama plan (Appendix F's backend for one chat user, the model pinned): Modelfile, ollama.env, serve.sh
LAPTOP = 'workload = "chat"\n[model]\nname = "llama3.1-8b"\n[hardware]\ngpu = "RTX 4090"\n'
H100 = 'workload = "chat"\nconcurrency = 8\n[hardware]\ngpu = "H100"\n'


def _answers(tmp_path, text):
    p = tmp_path / "answers.toml"
    p.write_text(text)
    return str(p)


def _export(tmp_path, capsys, target, out, text=LAPTOP):
    code = main(["export", "--answers", _answers(tmp_path, text), "--target", target, "--out", out, "--no-cache"])
    cap = capsys.readouterr()
    return code, cap.out, cap.err.strip()


def _tree(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_a_trailing_slash_means_a_folder_even_for_one_file(tmp_path, capsys):
    code, out, err = _export(tmp_path, capsys, "transformers", str(tmp_path / "newdir") + "/", H100)
    assert code == 0, err
    assert (tmp_path / "newdir").is_dir() and _tree(tmp_path / "newdir") == ["serve.sh"]
    assert os.access(tmp_path / "newdir" / "serve.sh", os.X_OK)


def test_a_trailing_slash_on_an_existing_file_is_refused(tmp_path, capsys):
    mine = tmp_path / "serve.sh"
    mine.write_text("mine\n")
    code, _, err = _export(tmp_path, capsys, "transformers", str(mine) + "/", H100)
    assert code == 2 and len(err.splitlines()) == 1 and "is a file" in err
    assert mine.read_text() == "mine\n"


@pytest.mark.parametrize("target, out", [
    ("transformers", "missing/serve.sh"),
    ("ollama", "missing/sub/"),
    ("ollama", "missing/sub"),
])
def test_a_missing_parent_folder_is_one_line_and_nothing_is_made(tmp_path, capsys, target, out):
    code, _, err = _export(tmp_path, capsys, target, str(tmp_path / out), H100 if target == "transformers" else LAPTOP)
    assert code == 2 and len(err.splitlines()) == 1
    assert "does not exist; create it first" in err and str(tmp_path / "missing") in err
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs, a folder no user can write in")
@pytest.mark.parametrize("target, out", [("transformers", "/sys/advisor-serve.py"), ("ollama", "/sys/advisor-out/")])
def test_a_folder_nobody_may_write_in_is_one_line(tmp_path, capsys, target, out):
    code, _, err = _export(tmp_path, capsys, target, out, H100 if target == "transformers" else LAPTOP)
    assert code == 2 and len(err.splitlines()) == 1 and "nothing was written" in err
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line_and_stays_empty(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = _export(tmp_path, capsys, "ollama", str(ro))
        assert code == 2 and len(err.splitlines()) == 1 and "Permission denied" in err
        assert _tree(ro) == []
    finally:
        ro.chmod(0o755)


def _export_with_file_size_limit(answers, out, limit):
    """The CLI in a child process whose files may not grow past `limit` bytes (RLIMIT_FSIZE): the
    kernel fails the write with EFBIG part-way through the set, as a full disk fails it with ENOSPC."""
    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "advisor", "export", "--answers", answers, "--target", "ollama",
                           "--out", out, "--no-cache"], capture_output=True, text=True, env=env, preexec_fn=cap,
                          timeout=120)


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("folder_exists", [False, True])
def test_a_write_failing_part_way_leaves_no_file_and_a_rerun_works(tmp_path, capsys, folder_exists):
    answers = _answers(tmp_path, LAPTOP)
    assert main(["export", "--answers", answers, "--target", "ollama", "--no-cache"]) == 0
    sizes = sorted(len(b.encode()) for b in capsys.readouterr().out.split("# ==> ")[1:])
    assert sizes[0] + 64 < sizes[-1]
    out = tmp_path / "deploy"
    if folder_exists:
        out.mkdir()
        (out / "NOTES.md").write_text("mine\n")
    # Small enough that the largest file fails, big enough that the smallest would have been written.
    r = _export_with_file_size_limit(answers, str(out), (sizes[0] + sizes[-1]) // 2)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "nothing was written" in r.stderr
    if folder_exists:
        assert _tree(out) == ["NOTES.md"] and (out / "NOTES.md").read_text() == "mine\n"
    else:
        assert not out.exists()
    # nothing left to refuse a rerun: it writes the whole set
    code, stdout, err = _export(tmp_path, capsys, "ollama", str(out))
    assert code == 0, err
    names = {"Modelfile", "ollama.env", "serve.sh"}
    assert names <= set(_tree(out)) and all((out / n).stat().st_size > 0 for n in names)
    assert os.access(out / "serve.sh", os.X_OK) and not os.access(out / "Modelfile", os.X_OK)


def test_a_very_long_name_is_one_line(tmp_path, capsys):
    for out in (str(tmp_path / ("a" * 300)) + ".py", str(tmp_path) + "/a" * 3000 + ".py"):
        code, _, err = _export(tmp_path, capsys, "transformers", out, H100)
        assert code == 2 and len(err.splitlines()) == 1 and "File name too long" in err
        assert len(err) < 400  # the path is shortened, not echoed whole
    assert _tree(tmp_path) == ["answers.toml"]


def test_a_dangling_link_at_the_target_is_never_followed(tmp_path):
    link = tmp_path / "serve.py"
    link.symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(ExportError, match="already exists; not overwriting"):
        write_files(Snippet(target="transformers", files={"serve.py": "x = 1\n"}), str(link))
    assert not (tmp_path / "elsewhere.py").exists()


def test_one_existing_file_of_the_set_stops_all_of_it(tmp_path):
    (tmp_path / "b.txt").write_text("mine\n")
    snip = Snippet(target="t", files={"a.txt": "a", "b.txt": "b", "c.sh": "c"})
    with pytest.raises(ExportError, match="b.txt' already exists"):
        write_files(snip, tmp_path)
    assert _tree(tmp_path) == ["b.txt"] and (tmp_path / "b.txt").read_text() == "mine\n"


def test_a_nul_in_the_path_is_one_line(tmp_path):
    with pytest.raises(ExportError, match="NUL"):
        write_files(Snippet(target="t", files={"a.txt": "a"}), str(tmp_path / "a\x00b"))
