"""`advisor export --answers FILE --target vllm|ollama|llamacpp|transformers|tgi [--out FILE_OR_DIR]`.

The recommendation is the one `advisor recommend` gives for the same answers (same knowledge,
hardware resolution and probe results); the snippet carries its values. Without --out the files
are printed; with --out they are written, and an existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import sys

from advisor.domain import EXPORT_TARGETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--answers", metavar="FILE", required=True, help="answers file (TOML), as for `recommend`")
    parser.add_argument("--target", required=True, metavar="|".join(EXPORT_TARGETS),
                        help="what to write: " + ", ".join(EXPORT_TARGETS))
    parser.add_argument("--out", metavar="FILE_OR_DIR",
                        help="write the file(s) there instead of printing: a folder for several files; "
                             "an existing file is never overwritten")
    parser.add_argument("--probes", metavar="FILE", action="append", default=[],
                        help="probe results (JSON from `advisor probe --json`); repeatable")
    parser.add_argument("--no-cache", action="store_true", help="ignore cached probe results of this machine")


def recommendation_for(args: argparse.Namespace):
    from advisor.answers import load_answers
    from advisor.engine import recommend
    from advisor.hardware import resolve_hardware
    from advisor.knowledge import load_knowledge

    k = load_knowledge()
    answers = load_answers(args.answers)
    hardware = resolve_hardware(answers, k)
    probes = []
    try:  # the same probe inputs as `advisor recommend`, so both show the same plan
        from advisor.cli import cached_probes, load_probe_files
    except ImportError:
        pass
    else:
        probes = load_probe_files(getattr(args, "probes", []) or [])
        if not getattr(args, "no_cache", False):
            probes += cached_probes(answers, hardware)
    return recommend(answers, hardware=hardware, probes=probes, knowledge=k)


def run(args: argparse.Namespace) -> int:
    from advisor.export import export, render_text, write_files
    from advisor.errors import choice_error

    if args.target not in EXPORT_TARGETS:  # before the (slower) consultation
        raise choice_error("--target", args.target, EXPORT_TARGETS)
    snippet = export(recommendation_for(args), args.target)
    if not args.out:
        sys.stdout.write(render_text(snippet))
        return 0
    for path in write_files(snippet, args.out):
        sys.stdout.write(f"wrote {path}\n")
    for note in snippet.notes:
        sys.stdout.write(f"note: {note}\n")
    return 0
