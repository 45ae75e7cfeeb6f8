"""`grokscope train` and `grokscope resume`."""

from __future__ import annotations

from grokscope.cli.parsing import Parsed, int_option


def run_config(parsed: Parsed):
    """The validated run config of `grokscope train`: base config, then the overrides."""
    from grokscope.config import apply_overrides, validate

    overrides = dict(parsed.overrides)
    if parsed.command.init_from is not None:  # --init-from RUN, short for --train.init_from RUN
        overrides["train.init_from"] = parsed.command.init_from
    return validate(apply_overrides(parsed.base, overrides))


def cmd_train(parsed: Parsed) -> int:
    cfg = run_config(parsed)
    from grokscope.training.loop import train

    result = train(cfg, parsed.command.out, progress=False if parsed.command.quiet else None)
    return print_result(result)


def cmd_resume(parsed: Parsed) -> int:
    c = parsed.command
    steps = int_option(c.steps, "steps", 1)
    from grokscope.training.loop import resume

    result = resume(c.run, steps=steps, progress=False if c.quiet else None)
    return print_result(result)


def print_result(result) -> int:
    """What a finished (or stopped) run did; the exit code: 0 completed, 130 interrupted, 1 failed."""
    s = result.summary
    ev = s.get("events") or {}
    final = s.get("final") or {}
    split = s.get("generalization_split") or "test"
    print(f"run:     {result.path}")
    print(f"status:  {s['status']} after {s['steps_done']} steps, {s['wall_seconds']:.1f} s")
    line = f"final:   train acc {_acc(final.get('train_acc'))}, test acc {_acc(final.get('test_acc'))}"
    if split != "test":
        line += f", {split} acc {_acc(final.get(f'{split}_acc'))}"
    print(line)
    from grokscope import detect

    mem, gen = ev.get("memorized_step"), ev.get("generalized_step")
    mem_at = detect.dated(mem, ev.get("memorized_resolution"))
    gen_at = detect.dated(gen, ev.get("generalized_resolution"))
    print("events:  " + (f"memorized at step {mem_at}" if mem is not None else "not memorized")
          + (f", generalized at step {gen_at}" if gen is not None else ", not generalized")
          + ("" if split == "test" else f" ({split})"))

    v = s.get("verdict") or (detect.verdict(s, split) if s.get("events") else {})
    print(f"verdict: {v.get('label') or '-'}")
    print(f"outcome: {v.get('outcome_label') or s.get('phase')}")
    if s.get("stop_reason"):
        print(f"stopped: {s['stop_reason']}")
    from grokscope.tracking.rundir import RunDir

    rd = RunDir(result.path)
    fig = rd.figures / "curves.png"
    if fig.exists():
        print(f"figure:  {fig}")
    if rd.report.exists():
        print(f"report:  {rd.report}")
    if s["status"] == "interrupted":
        print(f"resume:  grokscope resume {result.path}")
        return 143 if "SIGTERM" in (s.get("stop_reason") or "") else 130  # 128 + the signal's number
    return 0 if s["status"] == "completed" else 1


def _acc(v) -> str:
    return "-" if v is None else f"{v:.3f}"
