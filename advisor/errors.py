"""One clear line for every kind of bad input; never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

# how long an echoed value may be in a one-line error ("…" marks the cut)
ECHO = 60


def shorten(text: str, width: int = ECHO) -> str:
    """One value as an error line may echo it: at most `width` characters, cut with '…'."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def shorten_path(path: object, width: int = 160) -> str:
    """A path for an error line: whole when it fits, else its start and its end (the file name)
    around a '…'."""
    text = str(path)
    if len(text) <= width:
        return text
    tail = min(len(text) // 2, width * 2 // 3)
    return text[: width - tail - 1] + "…" + text[-tail:]


def show(value: Any) -> str:
    """A value as the user wrote it (TOML spelling for booleans), short enough for one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return shorten(repr(value))
    if isinstance(value, str):
        return repr(shorten(value))
    return shorten(repr(value))



class AdvisorError(Exception):
    """An error the user can fix. `str(err)` is the one line we print."""

    exit_code = 2


class InputError(AdvisorError):
    """A field has a value that is not allowed."""

    def __init__(self, field: str, value: object, allowed: str, suggestion: str | None = None):
        self.field, self.value, self.allowed, self.suggestion = field, value, allowed, suggestion
        msg = f"{field}: {show(value)} is not allowed; expected {allowed}"
        if suggestion:
            msg += f" (did you mean {suggestion!r}?)"
        super().__init__(msg)


class KnowledgeError(AdvisorError):
    """A knowledge file (bundled or the user's) is malformed."""

    exit_code = 3


class ProbeError(AdvisorError):
    """A probe could not run; the message says why in one line."""

    exit_code = 4


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The nearest allowed name, for 'did you mean' hints."""
    choices = list(choices)
    if len(str(value)) > 100:  # a pasted page is no typo of a name
        return None
    lowered = {c.lower(): c for c in choices}
    hit = difflib.get_close_matches(str(value).lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[hit[0]] if hit else None


def choice_error(field: str, value: object, choices: Iterable[str]) -> InputError:
    choices = list(choices)
    return InputError(field, value, "one of " + ", ".join(choices), closest(str(value), choices))
