"""`advisor export [--answers FILE] [answer flags] --target vllm|ollama|llamacpp|transformers|tgi [--out FILE_OR_DIR]`.

The recommendation is the one `advisor recommend` gives for the same answers and flags: the same
flags (generated from the answer fields), the same inputs (advisor.inputs: hardware resolution,
probe files and this machine's cached probes). Without --out the files are printed; with --out
they are written, and an existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from advisor.engines import TARGETS as EXPORT_TARGETS
    from advisor.inputs import add_input_flags

    parser.add_argument("--target", required=True, metavar="|".join(EXPORT_TARGETS),
                        help="what to write: " + ", ".join(EXPORT_TARGETS))
    parser.add_argument("--out", metavar="FILE_OR_DIR",
                        help="write the file(s) there instead of printing: a folder for several files; "
                             "an existing file is never overwritten")
    add_input_flags(parser)


def recommendation_for(args: argparse.Namespace):
    from advisor.inputs import from_args

    return from_args(args).recommend()


def run(args: argparse.Namespace) -> int:
    from advisor.engines import TARGETS as EXPORT_TARGETS
    from advisor.errors import choice_error
    from advisor.export import export, render_text, write_files

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
