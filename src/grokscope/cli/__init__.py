"""Command line: `grokscope train | resume | show | report | compare | analyze | sweep | reproduce |
predict | presets`.

The commands are tyro subcommands, one dataclass each (`schema`); `parsing` reads argv with tyro
and `grokscope.config` types the run-config overrides (`--optim.lr 3e-3`). `main` is the one place
where errors become output: bad input is one line `grokscope: error: ...` on stderr with exit
code 2 and nothing written; an interrupted run exits 130, a failed one 1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

from grokscope.cli.errors import NoCommand, UsageError

__all__ = ["UsageError", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run one command line (default: sys.argv[1:]); returns the exit code."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `grokscope ... | head` closed stdout early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the flush at exit
        return 0


def _main(argv: list[str]) -> int:
    from grokscope.errors import ConfigError

    try:
        return _dispatch(argv)
    except NoCommand:
        print(usage(), file=sys.stderr)
        return 2
    except (ConfigError, UsageError) as e:
        return _error(str(e))
    except SystemExit as e:  # tyro after --help (0); it prints its own box only if no hook fired
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    except BrokenPipeError:
        raise  # handled in main(): the reader went away, not an error of the command
    except json.JSONDecodeError as e:
        return _error(f"not valid JSON: {e}")
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _error(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        print("grokscope: interrupted", file=sys.stderr)
        return 130


def _error(message: str) -> int:
    print(f"grokscope: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _dispatch(argv: list[str]) -> int:
    from grokscope.cli import predict, reproduce, runs, sweep, train
    from grokscope.cli.parsing import parse, reject_extra

    parsed = parse(argv)
    handlers = {"train": train.cmd_train, "resume": train.cmd_resume, "show": runs.cmd_show,
                "report": runs.cmd_report, "compare": runs.cmd_compare, "analyze": runs.cmd_analyze,
                "presets": runs.cmd_presets, "sweep": sweep.cmd_sweep,
                "reproduce": reproduce.cmd_reproduce, "predict": predict.cmd_predict}
    if parsed.name not in ("train", "sweep", "compare"):
        reject_extra(parsed)
    return handlers[parsed.name](parsed)


def usage() -> str:
    """`grokscope --help` as text."""
    from grokscope.cli.parsing import parse

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            parse(["--help"])
        except SystemExit:
            pass
    return out.getvalue().rstrip()
