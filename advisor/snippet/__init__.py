"""What every exporter is made of: the Snippet type, value look-ups with provenance, quoting, writing.

Each engine's exporter lives in its engine module (advisor/engines/<engine>.py); advisor/export
picks one by target. This package is what they share (and advisor/snippet/shell.py, bash).

Nothing here decides anything. A value comes from the Plan (a headline field, whose rule is
in ``set_by``, or a ``Setting``, which carries its rule and source); every emitted value is
written next to a comment naming that rule. Quoting is the only transformation applied to a
user-supplied string (model names, repos, paths, tags).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from advisor.domain import Plan, Recommendation
from advisor.errors import AdvisorError


class Snippet(BaseModel):
    """What an exporter returns: files to write (name -> text) and notes for the reader."""

    target: str
    files: dict[str, str]
    notes: list[str] = []


class ExportError(AdvisorError):
    """The recommendation cannot be written for this target; the message says why, in one line."""


# ------------------------------------------------------------------ values with provenance
@dataclass(frozen=True)
class Val:
    """One value to emit, the rule that set it and that rule's source."""

    key: str
    value: Any
    rule: str
    source: str

    def why(self) -> str:
        """The comment text: 'key: rule R (source)'; one line, whatever the source contains."""
        src = f" ({self.source})" if self.source else ""
        return one_line(f"{self.key}: rule {self.rule}{src}")


HEADLINE = ("backend", "quantization", "model", "max_context_tokens", "concurrency", "replicas", "tensor_parallel")


class Ctx:
    """The plan being exported, with look-ups that keep each value's rule and source."""

    def __init__(self, rec: Recommendation, target: str):
        if rec.recommendation is None:
            first = next((w for w in rec.warnings if w.strip()), "")
            why = f" ({one_line(first)})" if first else ""
            raise ExportError(f"nothing to export: there is no recommendation for these answers{why}")
        self.rec = rec
        self.plan: Plan = rec.recommendation
        self.target = target
        self.notes: list[str] = []
        self._sources: dict[str, str] = {}
        for f in rec.rules_fired:
            self._sources.setdefault(f.rule, f.source)

    # headline fields (backend, quantization, model, ...)
    def head(self, field: str) -> Val:
        rule = self.plan.set_by.get(field, "") or "recommendation"
        return Val(field, getattr(self.plan, field), rule, self._sources.get(rule, ""))

    # backend knobs (Plan.settings)
    def setting(self, key: str) -> Val | None:
        s = self.plan.settings.get(key)
        if s is None:
            return None
        return Val(key, s.value, s.rule, s.source)

    def pick(self, key: str, headline: str) -> Val:
        """A setting, else the headline field that carries the same value (e.g. num_ctx <- max_context_tokens)."""
        v = self.setting(key)
        if v is None:
            h = self.head(headline)
            v = Val(key, h.value, h.rule, h.source)
        return v

    def missing(self, key: str, consequence: str, backend: str = "") -> None:
        """A knob the plan (made for another backend) does not carry: say so, emit nothing for it.
        `backend`: the backend whose plans carry it, where it is not the target's own name."""
        self.notes.append(
            f"{key} is not in this plan (it was made for {self.plan.backend}); {consequence}. "
            f"For a value from the rules, re-run with constraints.backend = \"{backend or self.target}\"."
        )

    @property
    def os(self) -> str:
        """The OS the plan is for (the hardware it was made for, else the answers): "linux" or "windows"."""
        if self.rec.hardware is not None:
            return self.rec.hardware.os
        return self.rec.answers.hardware.os if self.rec.answers is not None else "linux"

    def windows_note(self, how: str) -> None:
        """A plan for Windows gets bash scripts: say where they run."""
        if self.os == "windows":
            self.notes.append(f"this plan is for Windows, and serve.sh is a bash script: {how}")

    @property
    def quant(self) -> str:
        return str(self.plan.quantization).lower()

    def gpus_of(self, replica: int) -> list[int]:
        """Device indices of one replica: replica i holds tensor_parallel consecutive GPUs."""
        tp = self.tp
        return list(range(replica * tp, (replica + 1) * tp))

    @property
    def tp(self) -> int:
        return integer(self.head("tensor_parallel"))

    @property
    def replicas(self) -> int:
        return integer(self.head("replicas"))

    def ports(self, base: int) -> list[int]:
        """One port a replica, counting up from `base`."""
        return [base + i for i in range(self.replicas)]


# ------------------------------------------------------------------ checks on values
GGUF_QUANTS = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_s", "q2_k")
GGUF_LABEL = {"fp16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q6_k": "Q6_K", "q5_k_m": "Q5_K_M",
              "q4_k_m": "Q4_K_M", "q3_k_s": "Q3_K_S", "q2_k": "Q2_K"}


def require_quant(ctx: Ctx, allowed: tuple[str, ...], hint: str) -> None:
    if ctx.quant not in allowed:
        q = ctx.head("quantization")
        raise ExportError(
            f"{ctx.target} cannot serve quantization {ctx.quant} (set by rule {q.rule}); "
            f"it takes {', '.join(q for q in allowed if q != 'q2_k')}; {hint}"  # q2_k: never allowed (P.1)
        )


def require_single_gpu_model(ctx: Ctx, why: str) -> None:
    if ctx.tp > 1:
        t = ctx.head("tensor_parallel")
        raise ExportError(
            f"{ctx.target} cannot express tensor_parallel {ctx.tp} (set by rule {t.rule}): {why}; "
            f"export for vllm or tgi instead"
        )


def integer(v: Val) -> int:
    """A count or length: a positive int, or the export stops (never a string in a numeric flag)."""
    x = v.value
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise ExportError(f"{v.key}: {x!r} (rule {v.rule}) is not a whole number; cannot export it")
    return x


def fraction(v: Val) -> float:
    x = v.value
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0 < float(x) <= 1):
        raise ExportError(f"{v.key}: {x!r} (rule {v.rule}) is not a fraction in (0, 1]; cannot export it")
    return float(x)


def number(v: Val) -> float:
    x = v.value
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x or x in (float("inf"), float("-inf")):
        raise ExportError(f"{v.key}: {x!r} (rule {v.rule}) is not a number; cannot export it")
    return x


def boolean(v: Val) -> bool:
    if not isinstance(v.value, bool):
        raise ExportError(f"{v.key}: {v.value!r} (rule {v.rule}) is not true/false; cannot export it")
    return v.value


def one_of(v: Val, allowed: tuple[str, ...]) -> str:
    if not isinstance(v.value, str) or v.value not in allowed:
        raise ExportError(f"{v.key}: {v.value!r} (rule {v.rule}) is not one of {', '.join(allowed)}; cannot export it")
    return v.value


def text(v: Val) -> str:
    """A user-supplied string (name, repo, path, tag). NUL cannot live in argv or a file name."""
    if not isinstance(v.value, str) or not v.value.strip():
        raise ExportError(f"{v.key}: {v.value!r} (rule {v.rule}) is empty; cannot export it")
    if "\x00" in v.value:
        raise ExportError(f"{v.key}: the value contains a NUL character; cannot export it")
    if v.value.startswith("-"):
        raise ExportError(f"{v.key}: {v.value!r} starts with '-', so a server would read it as an option; "
                          f"rename it or give a path (./{v.value})")
    return v.value


def fmt_num(x: float | int) -> str:
    return str(x) if isinstance(x, int) else repr(float(x))


# ------------------------------------------------------------------ model references
@dataclass(frozen=True)
class ModelRef:
    """Where the weights come from: a Hugging Face repo id or a local path (HF folder or GGUF file)."""

    val: Val
    kind: str  # "hf" | "local-dir" | "gguf"

    @property
    def value(self) -> str:
        return self.val.value

    @property
    def location(self) -> str:
        """What a server loads: a local folder as an absolute path, a repo id as it is."""
        return os.path.abspath(os.path.expanduser(self.value)) if self.kind == "local-dir" else self.value


def hf_model(ctx: Ctx) -> ModelRef:
    """The HF checkpoint for vLLM / TGI / transformers: the user's folder, else the catalog repo."""
    local = ctx.setting("local_path")
    if local is not None:
        path = text(local)
        if path.lower().endswith(".gguf"):
            raise ExportError(
                f"{ctx.target} serves Hugging Face checkpoints, and the model is the GGUF file {path!r}; "
                f"export for ollama or llamacpp instead"
            )
        return ModelRef(local, "local-dir")
    repo = ctx.setting("hf_repo")
    if repo is None or not str(repo.value).strip():
        raise ExportError(
            f"{ctx.target} needs a Hugging Face repo or a local model folder, and the plan names neither "
            f"for {ctx.plan.model!r}; add hf_repo to its catalog row or point model.name at its folder"
        )
    text(repo)
    return ModelRef(repo, "hf")


def hf_checkpoint(ctx: Ctx, quants: tuple[str, ...], hint: str) -> ModelRef:
    """Where every HF-checkpoint exporter (vLLM, TGI, transformers) starts: a quantization it serves,
    the checkpoint, and the note that AWQ/GPTQ need a pre-quantized one."""
    require_quant(ctx, quants, hint)
    ref = hf_model(ctx)
    pre_quantized_note(ctx, ref)
    return ref


def pre_quantized_note(ctx: Ctx, ref: ModelRef) -> None:
    if ctx.quant in ("awq", "gptq"):
        ctx.notes.append(
            f"{ctx.quant.upper()} needs a checkpoint quantized with {ctx.quant.upper()}; {ref.value!r} is the "
            f"model the plan names: if it is not such a checkpoint, point the model at its {ctx.quant.upper()} variant."
        )


# ------------------------------------------------------------------ quoting and comments
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def one_line(s: str) -> str:
    """Text safe inside a comment of any of our formats: no line breaks or control characters."""
    return _CONTROL.sub(" ", str(s)).strip()


def sh(s: object) -> str:
    """One shell word, whatever the string holds ($(...), backticks, quotes, newlines, ;)."""
    return shlex.quote(str(s))


def yaml_str(s: str) -> str:
    """A YAML double-quoted scalar that parses back to exactly ``s``."""
    out = ['"']
    for ch in str(s):
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F or 0x80 <= o <= 0x9F or o in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        elif o > 0xFFFF:
            out.append(f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def compose_str(s: str) -> str:
    """A YAML string for docker compose, which interpolates ``$``: escape it as ``$$`` first."""
    return yaml_str(str(s).replace("$", "$$"))


def docker_mount_source(path: str) -> str:
    """The --mount value binding ``path`` read-only at /model (docker reads --mount as one CSV record)."""
    field = "source=" + path
    if any(c in field for c in ',"\n\r'):
        field = '"' + field.replace('"', '""') + '"'
    return f"type=bind,{field},target=/model,readonly"


def sh_comment(v: Val) -> str:
    return "# " + v.why()


def header(ctx: Ctx, title: str, checked: str, prefix: str = "# ") -> list[str]:
    p = ctx.plan
    lines = [
        f"{title} for {p.model} at {p.quantization} (plan backend: {p.backend}), written by `advisor export`.",
        "Every value is the recommendation's; the comment beside it names the rule that set it and its source.",
        f"Flags checked against: {checked}.",
    ]
    return [prefix + one_line(x) for x in lines]


def bind_host_comment(port_desc: str) -> str:
    return (f"# export default, not advice: listen on 127.0.0.1 ({port_desc}); set HOST=0.0.0.0 to serve "
            "other machines, behind an API key or a proxy")


def balancing_note(ctx: Ctx, ports: list[int], what: str) -> None:
    r = ctx.head("replicas")
    ctx.notes.append(
        f"{len(ports)} replicas (rule {r.rule}) listen on ports {', '.join(map(str, ports))}, one per "
        f"{'GPU' if ctx.tp == 1 else f'{ctx.tp}-GPU group'}: put one endpoint in front of them, e.g. nginx "
        f"`upstream {what} {{ least_conn; " + " ".join(f"server 127.0.0.1:{p};" for p in ports) + " }`"
        ", or a LiteLLM router with the replicas as deployments of one model_name "
        "(routing_strategy: least-busy). Least-connections suits long generations better than round robin."
    )


def _shown(path: object, limit: int = 120) -> str:
    """A path for an error line: quoted, and cut in the middle when it is very long."""
    r = repr(str(path))
    return r if len(r) <= limit else r[: limit // 2 - 2] + "..." + r[-(limit // 2 - 1):]


def _is_dir_spelling(out: str) -> bool:
    """`--out newdir/`: a trailing separator means a folder, whatever the target writes."""
    seps = (os.sep,) + ((os.altsep,) if os.altsep else ())
    return out.endswith(seps)


def _place(tmp: Path, path: Path) -> None:
    """Give the finished temp file its name without ever replacing a file that appeared meanwhile.

    A hard link fails if the name exists (atomically); where links are not supported, rename
    after a last look."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def write_files(snippet: Snippet, out: str | Path) -> list[Path]:
    """Write the snippet's files as a set: all of them, or none.

    Never overwrites: one existing file stops the whole write before anything is written. Each
    file is written to a temp file in its folder and synced; only when all are complete do they
    get their names. A failure at any point (a full disk, a read-only folder, a name too long)
    removes what this call created, so a rerun meets no leftovers. A trailing slash in `out`
    means a folder even for a one-file target; a missing folder is created, but only inside a
    folder that exists.
    """
    raw = os.fspath(out)
    if "\x00" in raw:
        raise ExportError("--out: the path contains a NUL character; give a file or folder name")
    created_dir = False
    temps: dict[str, Path] = {}
    targets: dict[str, Path] = {}
    placed: list[Path] = []
    folder = Path(raw)
    try:
        folder, targets, make_dir = _plan_targets(snippet, raw)
        if make_dir:
            os.mkdir(folder)
            created_dir = True
        for name in targets:
            body = snippet.files[name] if snippet.files[name].endswith("\n") else snippet.files[name] + "\n"
            tmp = folder / f".advisor-export-{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            temps[name] = tmp
            with os.fdopen(fd, "wb") as fh:
                fh.write(body.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            if name.endswith(".sh"):
                os.chmod(tmp, 0o755)
        for name, path in targets.items():
            _place(temps[name], path)
            placed.append(path)
            del temps[name]
    except BaseException as e:
        for path in placed:  # ours: _place never replaces a file it did not create
            _remove(path)
        for tmp in temps.values():
            _remove(tmp)
        if created_dir:
            try:
                os.rmdir(folder)
            except OSError:
                pass
        if not isinstance(e, OSError):
            raise
        clash = getattr(e, "filename2", None) or e.filename
        if isinstance(e, FileExistsError) and clash and Path(clash) in targets.values():
            raise ExportError(f"--out: {_shown(clash)} appeared while writing; not overwriting it "
                              "(nothing was written)") from None
        where = e.filename if e.filename and not str(e.filename).endswith(".tmp") else folder
        raise ExportError(f"--out: cannot write in {_shown(where)}: {e.strerror or e.__class__.__name__} "
                          "(nothing was written)") from None
    return list(targets.values())


def _plan_targets(snippet: Snippet, raw: str) -> tuple[Path, dict[str, Path], bool]:
    """(folder the files go in, file name -> path, whether the folder must be made); checks only."""
    as_dir = _is_dir_spelling(raw)
    out = Path(raw).expanduser()
    files = snippet.files
    if len(files) == 1 and not as_dir and not out.is_dir():
        folder, targets = out.parent, {next(iter(files)): out}
    else:
        if out.exists() and not out.is_dir():
            what = f"{snippet.target} writes {len(files)} files ({', '.join(files)})" if len(files) > 1 \
                else "the trailing slash asks for a folder"
            raise ExportError(f"--out: {_shown(out)} is a file; {what}, give a folder")
        folder, targets = out, {name: out / name for name in files}
    for path in targets.values():
        if os.path.lexists(path):
            raise ExportError(f"--out: {_shown(path)} already exists; not overwriting it (move it or pick another path)")
    make_dir = not folder.is_dir()
    if make_dir:
        if os.path.lexists(folder):
            raise ExportError(f"--out: {_shown(folder)} is not a folder; give a folder or a file name in one")
        if folder != out:  # a file's folder is not made for it: a typo in it must not scatter folders
            raise ExportError(f"--out: folder {_shown(folder)} does not exist; create it first "
                              "(nothing was written)")
        if not folder.parent.is_dir():
            raise ExportError(f"--out: folder {_shown(folder.parent)} does not exist; create it first "
                              "(nothing was written)")
    return folder, targets, make_dir


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def render_text(snippet: Snippet) -> str:
    """All files with a header line each, then the notes; printable as one block."""
    parts = []
    for name, body in snippet.files.items():
        parts.append(f"# ==> {name} <==\n{body.rstrip()}\n")
    if snippet.notes:
        parts.append("# notes:\n" + "".join(f"# - {one_line(n)}\n" for n in snippet.notes))
    return "\n".join(parts)
