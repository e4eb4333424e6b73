"""The headless command line. Thin: it parses, calls recommend()/probes/export, prints.

Imports stay light so `advisor --help` answers at once: pydantic, the rules
engine and the knowledge base load only when a command needs them, and
torch/transformers only inside the probes that use them.
"""

from __future__ import annotations

import argparse
import sys

from advisor import __version__
from advisor.fields import FIELDS

FORMATS = ("json", "toml", "text")
EPILOG = """commands:
  advisor                         the guided TUI (questionnaire, probes, advice)
  advisor recommend ...           the recommendation for answers (file and/or flags)
  advisor probe ...               measure this GPU and model (cached per machine)
  advisor export ...              a deployment snippet for the recommendation
  advisor knowledge [TABLE]       the stored tables with their sources
"""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (no usage dump)."""

    def error(self, message: str):  # noqa: D401
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _add_answer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--answers", metavar="FILE", help="answers TOML file (flags override its values)")
    g = p.add_argument_group("answers (each also a key in the answers file)")
    for flag, path, _typ, help_ in FIELDS:
        # Values stay strings here: the answers model validates them with one clear line.
        g.add_argument(f"--{flag}", dest="f_" + path.replace(".", "__"), metavar=flag.split("-")[0].upper(),
                       help=help_)


def _flag_values(args: argparse.Namespace) -> dict:
    out = {}
    for _flag, path, _typ, _help in FIELDS:
        v = getattr(args, "f_" + path.replace(".", "__"), None)
        if v is not None:
            out[path] = v
    return out


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="advisor",
        description="Tells you how to serve an LLM on this GPU box, and proves it on your hardware.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"advisor {__version__}")
    p.add_argument("--answers", metavar="FILE", help="open the TUI with these saved answers")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    r = sub.add_parser("recommend", help="recommend a deployment for the answers")
    _add_answer_flags(r)
    r.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    r.add_argument("--probes", metavar="FILE", action="append", default=[],
                   help="probe results (JSON from `advisor probe --json`); repeatable")
    r.add_argument("--no-cache", action="store_true", help="ignore cached probe results of this machine")

    e = sub.add_parser("export", help="a deployment config snippet for the recommendation")
    _export_arguments(e)

    pr = sub.add_parser("probe", help="measure this machine (NVML, transformers, Ollama, OpenAI servers)")
    _probe_arguments(pr)

    k = sub.add_parser("knowledge", help="show the stored tables, row by row, with sources")
    k.add_argument("table", nargs="?", help="a table name (default: list the tables)")
    k.add_argument("--format", choices=("text", "json"), default="text")
    return p


def _export_arguments(e: argparse.ArgumentParser) -> None:
    try:
        from advisor.export.cli import add_arguments
    except ImportError:
        _add_answer_flags(e)
        e.add_argument("--target", required=True)
        return
    add_arguments(e)


def _probe_arguments(pr: argparse.ArgumentParser) -> None:
    try:
        from advisor.probes.cli import add_arguments
    except ImportError:
        pr.add_argument("--model")
        return
    add_arguments(pr)


# ------------------------------------------------------------------ commands
def read_answers(args: argparse.Namespace):
    """Answers from --answers FILE and/or flags; validated names against the knowledge."""
    from advisor.answers import load_answers, merge_flags

    base = load_answers(args.answers) if getattr(args, "answers", None) else None
    return merge_flags(base, _flag_values(args))


def load_probe_files(paths: list[str]):
    import json

    from pydantic import ValidationError

    from advisor.domain import ProbeResult
    from advisor.errors import AdvisorError

    out = []
    for path in paths:
        try:
            data = json.loads(open(path, encoding="utf-8").read())
        except FileNotFoundError:
            raise AdvisorError(f"--probes: {path!r} not found") from None
        except (OSError, ValueError) as e:
            raise AdvisorError(f"--probes: {path!r} is not readable JSON ({e.__class__.__name__})") from None
        items = data if isinstance(data, list) else [data]
        for item in items:
            try:
                out.append(ProbeResult.model_validate(item))
            except ValidationError as e:
                err = e.errors()[0]
                raise AdvisorError(f"--probes: {path!r}: field {'.'.join(map(str, err['loc']))!r}: {err['msg']}") from None
    return out


def cached_probes(answers, hardware) -> list:
    """Probe results this machine already measured for the GPU and model in question."""
    if hardware.source != "nvml":
        return []  # planning for another GPU: this machine's measurements don't apply
    try:
        from advisor.probes.cache import cached_results
    except ImportError:
        return []
    try:
        return list(cached_results(gpu=hardware.devices[0].name, model=answers.model.name or None))
    except Exception:
        return []


def cmd_recommend(args: argparse.Namespace) -> int:
    from advisor.engine import recommend
    from advisor.hardware import resolve_hardware
    from advisor.knowledge import load_knowledge
    from advisor.render import render

    k = load_knowledge()
    answers = read_answers(args)
    hardware = resolve_hardware(answers, k)
    probes = load_probe_files(args.probes)
    if not args.no_cache:
        probes += cached_probes(answers, hardware)
    rec = recommend(answers, hardware=hardware, probes=probes, knowledge=k)
    sys.stdout.write(render(rec, args.format))
    return 0


def cmd_knowledge(args: argparse.Namespace) -> int:
    from advisor.knowledge import load_knowledge
    from advisor.knowledge_view import render_knowledge

    sys.stdout.write(render_knowledge(load_knowledge(), args.table, args.format))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from advisor.export.cli import run

    return run(args)


def cmd_probe(args: argparse.Namespace) -> int:
    from advisor.probes.cli import run

    return run(args)


def cmd_tui(args: argparse.Namespace) -> int:
    if args.answers:
        from advisor.answers import load_answers

        load_answers(args.answers)  # a bad file is one line here, before the screen opens
    from advisor.tui.app import run

    return run(args.answers)


COMMANDS = {"recommend": cmd_recommend, "knowledge": cmd_knowledge, "export": cmd_export, "probe": cmd_probe}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from advisor.errors import AdvisorError
        try:
            code = COMMANDS.get(args.command, cmd_tui)(args)
        except AdvisorError as e:
            sys.stderr.write(f"advisor: error: {e}\n")
            return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("advisor: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # never a traceback: one line, and where to report it
        sys.stderr.write(f"advisor: internal error: {e.__class__.__name__}: {e} (please report this)\n")
        return 70
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
