"""Bash script assembly shared by the shell-based exporters.

Scripts put every flag in a bash array, one flag per line with its rule in a trailing
comment (bash allows comments inside a multi-line array), so values and their reasons stay
side by side and the command line itself stays short.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.snippet import Ctx, Val, fmt_num, fraction, integer, one_line, sh


@dataclass(frozen=True)
class Flag:
    """One command-line option: the flag, its value as text (None for a bare switch), where it came from."""

    flag: str
    value: str | None
    val: Val | None  # None for export defaults, which then carry `note`
    note: str = ""  # with a val: what the backend does with it, after the rule

    @classmethod
    def whole(cls, flag: str, val: Val, note: str = "") -> Flag:
        """An option whose value is a whole number, checked, from `val`."""
        return cls(flag, str(integer(val)), val, note)

    @classmethod
    def share(cls, flag: str, val: Val) -> Flag:
        """An option whose value is a fraction of the GPU's memory, checked, from `val`."""
        return cls(flag, fmt_num(fraction(val)), val)

    def words(self) -> list[str]:
        return [self.flag] if self.value is None else [self.flag, self.value]

    def comment(self) -> str:
        if self.val is not None:
            return "# " + self.val.why() + (f"; {one_line(self.note)}" if self.note else "")
        return "# " + self.note if self.note else ""


def array(name: str, flags: list[Flag]) -> list[str]:
    lines = [f"{name}=("]
    for f in flags:
        words = " ".join(sh(w) for w in f.words())
        c = f.comment()
        lines.append(f"  {words}" + (f"  {c}" if c else ""))
    lines.append(")")
    return lines


def prologue(head: list[str]) -> list[str]:
    return ["#!/usr/bin/env bash", *head, "set -euo pipefail", ""]


def launch(ctx: Ctx, command, ports: list[int], env: dict[str, str] | None = None,
           gpu_env: bool = True) -> list[str]:
    """Start the server: exec for one replica; for several, one background process per GPU group.

    ``command(port, i)`` returns the command line for replica i (ports are ints, written literally).
    """
    env = env or {}
    if len(ports) == 1:
        pre = " ".join(f"{k}={sh(v)}" for k, v in env.items())
        return [f"exec {pre + ' ' if pre else ''}{command(ports[0], 0)}"]
    lines = ["# one server per replica, each on its own GPU(s) and port",
             "trap 'kill $(jobs -p) 2>/dev/null || true' INT TERM"]
    for i, port in enumerate(ports):
        gpus = ",".join(map(str, ctx.gpus_of(i)))
        penv = {**env, "CUDA_VISIBLE_DEVICES": gpus} if gpu_env else env
        pre = " ".join(f"{k}={sh(v)}" for k, v in penv.items())
        lines.append(f"{pre + ' ' if pre else ''}{command(port, i)} &")
    lines.append("wait")
    return lines
