"""Dialogs: ask for a path, confirm an overwrite; and the save flows built on them.

Nothing is overwritten silently: an existing file is named in a yes/no question
whose default (Escape, Enter on "No") keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Static


class _WritablePath(Validator):
    dir_ok = False  # a folder is a valid answer (several files go into it)

    def validate(self, value: str) -> ValidationResult:
        from advisor.fields import shorten_path

        v = value.strip()
        if not v:
            return self.failure("type a file name")
        p = Path(v).expanduser()
        try:
            if p.is_dir() and not self.dir_ok:
                return self.failure("that is a directory; add a file name")
            parent = p.parent if not p.is_dir() else p
            if not parent.exists():
                return self.failure(f"folder {shorten_path(parent, 50)!r} does not exist")
            if len(p.name.encode()) > 255:  # the OS refuses it at save time (ENAMETOOLONG)
                return self.failure(f"file name of {len(p.name.encode())} bytes; at most 255")
        except (OSError, ValueError) as e:  # a path the OS refuses: its reason, in one line
            return self.failure(f"cannot use that path ({getattr(e, 'strerror', None) or 'not a usable path'})")
        return self.success()


class PathDialog(ModalScreen):
    """Ask for a path; dismiss with it (str) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str, dir_ok: bool = False):
        super().__init__()
        self.title_text, self.default = title, default
        self.validator = _WritablePath()
        self.validator.dir_ok = dir_ok

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="dialog-title")
            yield Input(self.default, id="path", validators=[self.validator], validate_on=["changed", "submitted"])
            yield Static("", id="path-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_input_changed(self, event: Input.Changed) -> None:
        r = event.validation_result
        self.query_one("#path-error", Static).update(
            "" if r is None or r.is_valid else "WARN " + "; ".join(r.failure_descriptions))

    def _submit(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        r = self.validator.validate(value)
        if not r.is_valid:
            self.query_one("#path-error", Static).update("WARN " + "; ".join(r.failure_descriptions))
            return
        self.dismiss(value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen):
    """A yes/no question; dismiss with True or False. No is the default."""

    BINDINGS = [Binding("escape", "no", "No"), Binding("n", "no", "No"), Binding("y", "yes", "Yes")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("No, keep it (n)", id="no", variant="primary")
                yield Button("Yes, overwrite (y)", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


def save_flow(app, title: str, default: str, targets: Callable[[str], list[Path]],
              write: Callable[[str], str], dir_ok: bool = False) -> None:
    """Ask for a path; if any of targets(path) exists, ask before overwriting; then write(path).

    write returns the line to notify; an exception with a message is shown as an error line.
    """

    def do_write(path: str) -> None:
        try:
            msg = write(path)
        except Exception as e:  # one line, never a traceback
            app.notify(f"FAIL {e}", severity="error", timeout=8)
            return
        app.notify(msg, timeout=8)

    def got_path(path: str | None) -> None:
        if not path:
            return
        try:
            existing = [p for p in targets(path) if p.exists()]
        except (OSError, ValueError) as e:  # one line, never a traceback
            app.notify(f"FAIL cannot use that path ({getattr(e, 'strerror', None) or e})", severity="error",
                       timeout=8)
            return
        if not existing:
            do_write(path)
            return
        names = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")

        def confirmed(yes: bool | None) -> None:
            if yes:
                do_write(path)
            else:
                app.notify(f"Not saved: {names} kept as it was", timeout=6)

        question = (f"WARN {names} already exists. Overwrite it?" if len(existing) == 1 else
                    f"WARN {len(existing)} files already exist: {names}. Overwrite them?")
        app.push_screen(ConfirmDialog(question), confirmed)

    app.push_screen(PathDialog(title, default, dir_ok=dir_ok), got_path)


def save_answers_dialog(app, default: str | None = None) -> None:
    from advisor.answers import save_answers

    def write(path: str) -> str:
        p = save_answers(app.answers, path, overwrite=True)  # existence was confirmed above
        return f"OK saved answers to {p} (reload: advisor --answers {p})"

    save_flow(app, "Save the answers as TOML (reload with advisor --answers FILE)",
              default or app.answers_path or "advisor-answers.toml",
              lambda path: [Path(path).expanduser()], write)


def snippet_targets(path: str, files: dict[str, str]) -> list[Path]:
    p = Path(path).expanduser()
    if len(files) == 1:
        return [p / next(iter(files))] if p.is_dir() else [p]
    return [p / name for name in files]


def write_snippet(path: str, files: dict[str, str]) -> list[Path]:
    """One file: to path (or into it, if it is a folder). Several: into the folder path."""
    targets = snippet_targets(path, files)
    if len(files) > 1:
        Path(path).expanduser().mkdir(parents=True, exist_ok=True)
    written = []
    for target, text in zip(targets, files.values(), strict=True):
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        if target.name.endswith(".sh"):  # runnable as written, as `advisor export --out` leaves it
            tmp.chmod(0o755)
        tmp.replace(target)
        written.append(target)
    return written
