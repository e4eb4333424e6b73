"""Everything recommend() takes, gathered one way for the CLI, `advisor export` and the TUI.

answers + the GPUs they resolve to (advisor.hardware) + probe results: those handed in (probe
files, a probe just run in the TUI) and this machine's cached measurements for the GPU and model
in question. The same answers file therefore plans the same recommendation in every front end.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from advisor.domain import Answers, GpuDevice, Hardware, ProbeResult, Recommendation
from advisor.errors import AdvisorError
from advisor.fields import shorten, shorten_path

MAX_PROBE_FILE_BYTES = 16 << 20


@dataclass(frozen=True)
class Inputs:
    answers: Answers
    hardware: Hardware
    probes: list[ProbeResult] = field(default_factory=list)
    knowledge: object = None

    def recommend(self) -> Recommendation:
        from advisor.recommend import recommend

        return recommend(self.answers, hardware=self.hardware, probes=self.probes or None,
                         knowledge=self.knowledge)


def gather(answers: Answers, knowledge=None, *, probes: Iterable[ProbeResult] = (),
           probe_files: Iterable[str] = (), use_cache: bool = True,
           detected: list[GpuDevice] | None = None) -> Inputs:
    """The inputs for these answers. Names are checked first (one line naming the field), then
    the hardware is resolved (detected: GPUs NVML already reported, or None to ask it now)."""
    from advisor.answers import check_names
    from advisor.hardware import resolve_hardware

    if knowledge is None:
        from advisor.knowledge import load_knowledge

        knowledge = load_knowledge()
    check_names(answers, knowledge)
    hardware = resolve_hardware(answers, knowledge, detected=detected)
    found = list(probes) + load_probe_files(list(probe_files))
    if use_cache:
        found += cached_probes(answers, hardware)
    return Inputs(answers=answers, hardware=hardware, probes=_unique(found), knowledge=knowledge)


def _unique(results: list[ProbeResult]) -> list[ProbeResult]:
    """One copy of each measurement: a probe just run is also in the cache (cached=True)."""
    seen, out = set(), []
    for r in results:
        key = (r.backend, r.model, r.gpu, r.attention, r.dtype, r.measured_at)
        if r.measured_at and key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def cached_probes(answers: Answers, hardware: Hardware) -> list[ProbeResult]:
    """Probe results this machine already measured for the GPU and model in question."""
    if hardware.source != "nvml":
        return []  # planning for another GPU: this machine's measurements don't apply
    try:
        from advisor.probes.cache import cached_results
    except ImportError:
        return []
    try:
        return list(cached_results(gpu=hardware.devices[0].name, model=answers.model.name or None))
    except Exception:  # a damaged cache never stops a plan
        return []


def load_probe_files(paths: list[str]) -> list[ProbeResult]:
    """ProbeResults from `advisor probe --json` files; one line on a missing or bad file."""
    from pydantic import ValidationError

    out = []
    for path in paths:
        name = repr(shorten_path(path))
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise AdvisorError(f"--probes: {name} is not a regular file")
            if st.st_size > MAX_PROBE_FILE_BYTES:
                raise AdvisorError(f"--probes: {name} is {st.st_size:,} bytes; at most {MAX_PROBE_FILE_BYTES:,}")
            with open(path, encoding="utf-8") as fh:
                data = json.loads(fh.read(MAX_PROBE_FILE_BYTES + 1))
        except FileNotFoundError:
            raise AdvisorError(f"--probes: {name} not found") from None
        except (OSError, ValueError) as e:
            raise AdvisorError(f"--probes: {name} is not readable JSON ({e.__class__.__name__})") from None
        items = data if isinstance(data, list) else [data]
        for item in items:
            try:
                out.append(ProbeResult.model_validate(item))
            except ValidationError as e:
                err = e.errors()[0]
                raise AdvisorError(f"--probes: {name}: field {'.'.join(map(str, err['loc']))!r}: "
                                   f"{shorten(err['msg'])}") from None
    return out


# ------------------------------------------------------------------ from the command line
def add_input_flags(p: argparse.ArgumentParser) -> None:
    """--answers, one flag per answer field (generated from the model, advisor.fields), --probes
    and --no-cache: the same for `recommend` and `export`. Values stay text here; the model
    validates them with one line."""
    from advisor.fields import answer_fields

    p.add_argument("--answers", metavar="FILE", help="answers TOML file (flags override its values)")
    p.add_argument("--probes", metavar="FILE", action="append", default=[],
                   help="probe results (JSON from `advisor probe --json`); repeatable")
    p.add_argument("--no-cache", action="store_true", help="ignore cached probe results of this machine")
    g = p.add_argument_group("answers (each also a key in the answers file)")
    for f in answer_fields():
        meta = "|".join(c for c in f.choices if c) if f.kind == "choice" else (f.ask.unit or f.kind).upper()
        default = "" if f.default is None else f"; default {f.format(f.default) or chr(34) * 2}"
        g.add_argument(f"--{f.flag}", dest=f.dest, metavar=meta.replace("/", "_"),
                       help=f"{f.ask.help}; {f.allowed()}{default} (file key: {f.path})".replace("%", "%%"))


def answers_from_args(args: argparse.Namespace) -> Answers:
    """Answers from --answers FILE and/or the answer flags (flags win), validated by the model."""
    from advisor.answers import load_answers, merge_flags
    from advisor.fields import answer_fields

    base = load_answers(args.answers) if getattr(args, "answers", None) else None
    flags = {f.path: getattr(args, f.dest) for f in answer_fields() if getattr(args, f.dest, None) is not None}
    return merge_flags(base, flags)


def from_args(args: argparse.Namespace) -> Inputs:
    return gather(answers_from_args(args), probe_files=getattr(args, "probes", []) or [],
                  use_cache=not getattr(args, "no_cache", False))
