"""The headless command line. Thin: it parses, calls recommend()/probes/export, prints.

Imports stay light so `advisor --help` answers at once: pydantic, the rules
engine and the knowledge base load only when a command needs them, and
torch/transformers only inside the probes that use them.
"""

from __future__ import annotations

import argparse
import sys

from advisor import __version__

FORMATS = ("json", "toml", "text", "answers")
EPILOG = """commands:
  advisor                         the guided TUI (questionnaire, probes, advice)
  advisor recommend ...           the recommendation for answers (file and/or flags)
  advisor probe ...               measure this GPU and model (cached per machine)
  advisor export ...              a deployment snippet for the recommendation
  advisor knowledge [TABLE]       the stored tables with their sources

`advisor COMMAND --help` lists a command's flags.
"""
COMMAND_HELP = {
    "recommend": "recommend a deployment for the answers",
    "export": "a deployment config snippet for the recommendation",
    "probe": "measure this machine (NVML, transformers, Ollama, OpenAI servers)",
    "knowledge": "show the stored tables, row by row, with sources",
}
ANSWERS_EPILOG = """Every answer is also a key of the answers file (TOML; flags override the file's values):
top-level keys, then the [hardware], [model], [slo] and [constraints] tables, as
`advisor recommend ... --format answers` writes them. That output, saved to a file, is what
--answers reads back: the same answers, flags and defaults included."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (no usage dump)."""

    def error(self, message: str):  # noqa: D401
        from advisor.fields import shorten

        sys.stderr.write(f"{self.prog}: error: {shorten(message, 200)} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _recommend_arguments(r: argparse.ArgumentParser) -> None:
    from advisor.inputs import add_input_flags

    add_input_flags(r)
    r.add_argument("--format", choices=FORMATS, default="text",
                   help="output format (default: text); 'answers' prints the answers themselves "
                        "(file + flags + defaults) as TOML, to save and pass back as --answers")


def _knowledge_arguments(k: argparse.ArgumentParser) -> None:
    k.add_argument("table", nargs="?", help="a table name (default: list the tables)")
    k.add_argument("--format", choices=("text", "json"), default="text")


def _export_arguments(e: argparse.ArgumentParser) -> None:
    from advisor.export.cli import add_arguments

    add_arguments(e)


def _probe_arguments(pr: argparse.ArgumentParser) -> None:
    try:
        from advisor.probes.cli import add_arguments
    except ImportError:
        pr.add_argument("--model")
        return
    add_arguments(pr)


ARGUMENTS = {"recommend": _recommend_arguments, "export": _export_arguments, "probe": _probe_arguments,
             "knowledge": _knowledge_arguments}


def _command_in(argv: list[str]) -> str | None:
    """The command word of argv (None for the TUI): only its flags are built, so `advisor --help`
    loads neither pydantic nor the answer fields."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--answers":
            skip = True
        elif a == "--":
            return None
        elif not a.startswith("-"):
            return a if a in ARGUMENTS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with argv, only the named command's flags are built (all of them without)."""
    wanted = _command_in(argv) if argv is not None else None
    p = OneLineParser(
        prog="advisor",
        description="Tells you how to serve an LLM on this GPU box, and proves it on your hardware.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"advisor {__version__}")
    p.add_argument("--answers", metavar="FILE", help="open the TUI with these saved answers")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, add in ARGUMENTS.items():
        epilog = ANSWERS_EPILOG if name in ("recommend", "export") else None
        sp = sub.add_parser(name, help=COMMAND_HELP[name], description=COMMAND_HELP[name], epilog=epilog)
        if argv is None or wanted == name:
            add(sp)
    return p


# ------------------------------------------------------------------ commands
def cmd_recommend(args: argparse.Namespace) -> int:
    from advisor.inputs import answers_from_args, from_args

    if args.format == "answers":
        from advisor.answers import answers_to_toml, check_names
        from advisor.knowledge import load_knowledge

        answers = answers_from_args(args)
        check_names(answers, load_knowledge())
        sys.stdout.write(answers_to_toml(answers))
        return 0
    from advisor.render import render

    sys.stdout.write(render(from_args(args).recommend(), args.format))
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
    from advisor.tui.app import run  # a bad answers file is one line there, before the screen opens

    return run(args.answers)


COMMANDS = {"recommend": cmd_recommend, "knowledge": cmd_knowledge, "export": cmd_export, "probe": cmd_probe}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
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
        from advisor.fields import shorten

        sys.stderr.write(f"advisor: internal error: {e.__class__.__name__}: {shorten(str(e), 200)} "
                         "(please report this)\n")
        return 70
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
