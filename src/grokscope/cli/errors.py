"""Bad command lines as one line: UsageError, and tyro's parse failures turned into UsageErrors.

`grokscope.cli.main` is the one place that prints them (`grokscope: error: ...`, exit code 2).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """Bad command line; printed as one line, exit code 2."""


class NoCommand(UsageError):
    """`grokscope` without a command: the usage is printed, exit code 2."""


@contextlib.contextmanager
def tyro_errors(argv: list[str]) -> Iterator[None]:
    """Within: every tyro parse failure raises UsageError with a one-line message naming the
    option (tyro's hook fires before tyro would print its box and exit)."""
    from tyro import _errors

    def hook(event: Any) -> None:
        raise UsageError(_message(event, argv))

    with _errors.on_parse_error(hook):
        yield


def _name(argument: Any) -> str:
    """'optim.lr' for --optim.lr, 'RUN' for a positional RUN."""
    if argument.is_positional():
        return str(argument.lowered.metavar)
    return argument.lowered.name_or_flags[-1].lstrip("-")


def _message(event: Any, argv: list[str]) -> str:
    from tyro import _errors

    from grokscope.cli.schema import COMMANDS

    command = argv[0] if argv and argv[0] in COMMANDS else event.prog.partition(" ")[2] or "grokscope"
    if isinstance(event, _errors.MissingSubcommand):
        if not argv:
            raise NoCommand("give a command")
        first = argv[0]
        if first.startswith("-"):
            return f"unknown option {first.partition('=')[0]}; give a command first: {', '.join(COMMANDS)}"
        return f"unknown command {first!r}; choose one of {', '.join(COMMANDS)}"
    if isinstance(event, _errors.BadValue):
        name = _name(event.argument)
        if event.reason == "too_few_values":
            return f"{name}: missing value after --{name}"
        return f"{name}: cannot be set on the command line, got {event.offending_value!r}"
    if isinstance(event, _errors.InvalidChoice):
        return f"{_name(event.argument)}: must be one of {', '.join(event.choices)}, got {event.value!r}"
    if isinstance(event, _errors.InstantiationFailure):
        head = f"{_name(event.argument)}: " if event.argument is not None else ""
        return head + " ".join(str(event.message).split())
    if isinstance(event, _errors.MissingArgs):
        missing = " ".join(_name(a.arg) for a in event.missing_arguments)
        return f"{command}: missing {missing} (see grokscope {command} --help)"
    if isinstance(event, _errors.UnrecognizedArgs):
        return f"{command}: unexpected argument {event.tokens[0]!r}"
    return f"{command}: invalid command line ({type(event).__name__}); see grokscope {command} --help"


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Within: a JSON file that does not parse is reported naming `path` (a run or sweep directory)."""
    try:
        yield
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: a file does not hold valid JSON ({e})") from None
