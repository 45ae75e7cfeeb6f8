"""From argv to a command: two tyro passes over tyro schemas, no hand-written argv loop.

1. `_BaseChoice` (tyro, unknown tokens returned) reads only --preset / --config / --spec, so that
   the run config's defaults, shown by --help and used by the parse, are those of the chosen base.
2. `schema.command_union` (tyro, with those defaults) parses the whole command line. Run-config
   leaves are captured as raw tokens (`Given`); `run_overrides` turns them into the
   {dotted field: text} overrides that `grokscope.config.apply_overrides` types and checks, so a
   bad value reads exactly as for a config file or a sweep spec ('train.steps: must be an
   integer, got 'many''). Tokens tyro's schema cannot know (--task.options.NAME VALUE of a
   plug-in kind, --section.no-flag) come back as tyro's unknown arguments and are accepted there.

Every tyro failure goes through `errors.tyro_errors`, which turns it into one UsageError line.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import tyro
from tyro.conf import arg
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

from grokscope.cli import schema
from grokscope.cli.errors import UsageError, tyro_errors
from grokscope.config import RunConfig, apply_overrides, is_bool_type, leaf_types

PROG = "grokscope"
_OPTIONS = "task.options."


class Given(tuple):
    """The tokens given on the command line for one run-config field (typed later)."""


# ------------------------------------------------------------------------ run-config leaves


def _metavar(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if is_bool_type(tp) and tp is not bool:
        return "[true|false|None]"
    if origin in (typing.Union, types.UnionType):
        return "|".join(_metavar(a) for a in args)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{_metavar(args[0])},..."
        return ",".join(_metavar(a) for a in args)
    if tp is bool:
        return "[true|false]"
    return {int: "INT", float: "FLOAT", str: "STR", type(None): "None"}.get(tp, "VALUE")


def _text(value: Any) -> str:
    """A default value as the command line would spell it (for --help)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".12g")
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}" if value else "{}"
    return str(value)


def _no_dict(tokens: list[str]) -> Any:
    raise ValueError("give plug-in task options one by one: --task.options.NAME VALUE")


REGISTRY = ConstructorRegistry()


@REGISTRY.primitive_rule
def _override_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    """Run-config leaves (marked OVERRIDE): keep the raw tokens; booleans take 0 or 1 value
    (--log.figure, --log.figure false), tuples 1 or more (0.9,0.98 or 0.9 0.98)."""
    if schema.OVERRIDE not in info.markers or dataclasses.is_dataclass(info.type):
        return None
    tp = info.type
    if typing.get_origin(tp) is dict:
        return PrimitiveConstructorSpec(nargs=1, metavar="(use --task.options.NAME VALUE)",
                                        instance_from_str=_no_dict, is_instance=lambda v: True,
                                        str_from_instance=lambda v: [_text(v)])
    star = is_bool_type(tp) or typing.get_origin(tp) is tuple
    return PrimitiveConstructorSpec(nargs="*" if star else 1, metavar=_metavar(tp), instance_from_str=Given,
                                    is_instance=lambda v: True, str_from_instance=lambda v: [_text(v)])


def run_overrides(cfg: RunConfig, extra: list[str], command: str, argv: list[str]) -> dict[str, str]:
    """{dotted field: text} of what the command line gave: the captured leaves of `cfg` (tyro's
    result) plus the unknown tokens tyro handed back (--task.options.NAME VALUE, --section.no-flag).
    A boolean given both ways (--log.no-report ... --log.report true) takes the later spelling."""
    out: dict[str, str] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value, name = getattr(obj, f.name), prefix + f.name
            if isinstance(value, Given):
                if not value and not is_bool_type(leaf_types()[name]):
                    raise UsageError(f"{name}: missing value after --{name}")
                out[name] = ",".join(value) if value else "true"
            elif dataclasses.is_dataclass(value):
                walk(value, name + ".")

    walk(cfg, "")
    negated = _unknown_overrides(extra, command)
    if negated.keys() & out.keys():  # tyro keeps no order between two flags: the later one wins
        last = {t.partition("=")[0][2:].replace("-", "_"): i for i, t in enumerate(argv)
                if t.startswith("--")}
        negated = {k: v for k, v in negated.items()
                   if k not in out or last.get(k, -1) < last.get(_no(k), -1)}
    out.update(negated)
    return out


def _no(name: str) -> str:
    """'log.figure' -> 'log.no_figure' (the false spelling of a boolean)."""
    head, _, leaf = name.rpartition(".")
    return f"{head}.no_{leaf}" if head else f"no_{leaf}"


def _unknown_overrides(tokens: list[str], command: str) -> dict[str, str]:
    """Overrides among the tokens tyro's schema does not know; anything else is an error."""
    hints, out = leaf_types(), {}
    rest = iter(tokens)
    for token in rest:
        if not token.startswith("--"):
            raise UsageError(f"{command}: unexpected argument {token!r}; options look like --optim.lr 3e-3")
        key, eq, value = token[2:].partition("=")
        key = key.replace("-", "_")
        head, _, leaf = key.rpartition(".")
        negated = f"{head}.{leaf[3:]}" if head and leaf.startswith("no_") else leaf[3:]
        if key.startswith(_OPTIONS) and len(key) > len(_OPTIONS):
            if not eq:
                value = next(rest, None)
                if value is None or value.startswith("--"):
                    raise UsageError(f"{key}: missing value after --{key}")
            out[key] = value
        elif not eq and leaf.startswith("no_") and is_bool_type(hints.get(negated)):
            out[negated] = "false"
        else:
            raise UsageError(f"{key}: unknown field{_suggest(key, command)}")
    return out


def _suggest(key: str, command: str) -> str:
    names = [*leaf_types(), *option_names(command)]
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def option_names(command: str) -> list[str]:
    """The command's own options (its dataclass fields other than the run config)."""
    return [f.name for f in dataclasses.fields(schema.COMMANDS[command]) if f.name != "fields"]


# ------------------------------------------------------------------------------ the two passes


@dataclass(frozen=True)
class _BaseChoice:
    """Pass 1 of train/sweep: only what decides the base config."""

    preset: Annotated[str | None, arg(metavar="NAME")] = None
    config: Annotated[str | None, arg(metavar="JSON")] = None
    spec: Annotated[str | None, arg(metavar="FILE")] = None


@dataclass(frozen=True)
class Parsed:
    name: str
    """The command, e.g. 'train'."""
    command: Any
    """Its dataclass instance."""
    base: RunConfig | None = None
    """train/sweep: the base config (preset or --config, for sweeps with the spec's overrides)."""
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    """train/sweep: {dotted field: text} given on the command line."""
    extra: tuple[str, ...] = ()
    """Other commands: tokens tyro did not recognize (each command decides)."""


def base_config(command: str, choice: _BaseChoice) -> RunConfig:
    """The base config of train/sweep from --preset / --config (/ --spec for sweeps)."""
    from grokscope.presets import get_preset

    if choice.preset is not None and choice.config is not None:
        raise UsageError("preset: give either --preset NAME or --config JSON, not both")
    if choice.config is not None:
        return load_config(choice.config)
    if choice.preset is not None or command != "sweep" or choice.spec is None:
        return get_preset(choice.preset or "demo")
    from grokscope.sweep.spec import load_spec

    spec = load_spec(choice.spec)
    base = load_config(spec.config) if spec.config is not None else get_preset(spec.preset or "demo")
    return apply_overrides(base, dict(spec.overrides))


def load_config(path: str) -> RunConfig:
    import json
    from pathlib import Path

    from grokscope.config import load_json

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config: {str(p)!r} is not a file")
    try:
        return load_json(p.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"config: {str(p)!r} is not valid JSON: {e}") from None


def parse(argv: list[str]) -> Parsed:
    """Parse a full command line (without the program name); raises UsageError/ConfigError, or
    SystemExit(0) after printing --help."""
    name = argv[0] if argv else None
    defaults: dict[str, object] = {}
    base = None
    if name in schema.RUN_COMMANDS:
        with tyro_errors(argv):
            choice, _ = tyro.cli(_BaseChoice, args=argv[1:], prog=f"{PROG} {name}", add_help=False,
                                 return_unknown_args=True, use_underscores=True, console_outputs=False)
        base = base_config(name, choice)
        defaults[name] = schema.COMMANDS[name](fields=base)
    with tyro_errors(argv):
        union = schema.command_union(defaults, listing=name not in schema.COMMANDS)
        command, unknown = tyro.cli(union, args=argv, prog=PROG,
                                    return_unknown_args=True, use_underscores=True, registry=REGISTRY,
                                    description=DESCRIPTION)
    name = next(n for n, cls in schema.COMMANDS.items() if type(command) is cls)
    for key in given_twice(argv[1:]):  # documented: the last one wins, and the user is told
        print(f"grokscope: warning: --{key} is given more than once; the last value is used", file=sys.stderr)
    if name in schema.RUN_COMMANDS:
        return Parsed(name, command, base, run_overrides(command.fields, unknown, name, argv))
    return Parsed(name, command, extra=tuple(unknown))


REPEATABLE = {"axis", "slurm"}
"""Options meant to be given several times."""


def given_twice(tokens: list[str]) -> list[str]:
    """Options (and run-config fields) that appear more than once among `tokens`, in order; a
    boolean's --section.no-flag counts as the same field. A lookup over the tokens for the warning,
    not a parser: tyro has parsed them."""
    seen: set[str] = set()
    twice: list[str] = []
    for token in tokens:
        if not token.startswith("--") or token == "--":
            continue
        key = token[2:].partition("=")[0].replace("-", "_")
        head, dot, leaf = key.rpartition(".")
        if leaf.startswith("no_"):
            key = f"{head}{dot}{leaf[3:]}"
        if key in REPEATABLE or key == "help":
            continue
        if key in seen and key not in twice:
            twice.append(key)
        seen.add(key)
    return twice


DESCRIPTION = """Reproduce, watch and explain grokking. `grokscope COMMAND --help` lists a command's
options; `grokscope train --help` every config field with its documentation and the preset's
default. Bad input is one line naming the field, exit code 2, and nothing is written."""


def int_option(text: str | None, name: str, low: int) -> int | None:
    """A command's own integer option, checked: None when not given."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise UsageError(f"{name}: must be an integer >= {low}, got {text!r}")
    return value


def reject_extra(parsed: Parsed) -> None:
    """Raise for tokens a command without run-config fields did not recognize."""
    if not parsed.extra:
        return
    token = parsed.extra[0]
    if parsed.name == "presets":
        raise UsageError(f"presets: takes no arguments, got {' '.join(parsed.extra)!r}")
    if token.startswith("-"):
        allowed = ", ".join("--" + n for n in option_names(parsed.name)
                            if not _is_positional(parsed.name, n))
        raise UsageError(f"{parsed.name}: unknown option {token.partition('=')[0]}; allowed: {allowed}")
    raise UsageError(f"{parsed.name}: unexpected argument {token!r}")


def _is_positional(command: str, field_name: str) -> bool:
    hints = typing.get_type_hints(schema.COMMANDS[command], include_extras=True)
    return any(m is tyro.conf.Positional for m in getattr(hints[field_name], "__metadata__", ()))
