"""`grokscope reproduce NAME... | --all | --quick`: train presets over seeds, check their expectations.

Bad input (an unknown preset, one without expectations, --seeds 0, a DIR holding other runs of a
preset) is one line naming the field, exit code 2, before anything is trained. A failed check
exits 1 after the table; Ctrl-C exits 130 (the same command again trains the missing runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

from grokscope.cli.errors import UsageError
from grokscope.cli.parsing import Parsed, int_option
from grokscope.cli.sweep import INTERRUPTED, _slurm_params, check_executor_options


def cmd_reproduce(parsed: Parsed) -> int:
    from grokscope.reproduce import reproduce, select, text_table

    c = parsed.command
    check_executor_options(c)
    if not c.out.strip():
        raise UsageError("out: must be a directory path, got ''")
    seeds = int_option(c.seeds, "seeds", 1)
    workers = int_option(c.workers, "workers", 1)
    names = select(list(c.presets), all_=c.all, quick=c.quick)
    log = (lambda m: None) if c.quiet else (lambda m: print(m, flush=True))
    try:
        result = reproduce(names, c.out, seeds=seeds, quick=c.quick, executor=c.executor, workers=workers,
                           address=c.address, slurm=_slurm_params(c.slurm), log=log)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr, flush=True)
        return 130
    rows = result["runs"]
    print(text_table(rows))
    passed = sum(r["ok"] for r in rows)
    missing, cut = result["missing"], result["interrupted"]
    counted = "finished runs pass" if cut and missing else "runs pass"
    print(f"\n{passed} of {len(rows)} {counted}; tables: {c.out}/reproduce.md, {c.out}/reproduce.html")
    if missing:
        print(f"{len(missing)} runs " + ("not finished yet: " if cut else "did not finish (FAIL): ")
              + ", ".join(_short(m) for m in missing[:3]) + (", ..." if len(missing) > 3 else ""))
    if result["interrupted"]:
        print(INTERRUPTED)
        return 130
    return 0 if result["ok"] else 1


def _short(run_dir: str) -> str:
    """PRESET/RUN of OUT/PRESET/runs/RUN."""
    p = Path(run_dir)
    return f"{p.parent.parent.name}/{p.name}"
