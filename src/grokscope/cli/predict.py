"""`grokscope predict RUN...` (forecast) and `grokscope predict --fit SWEEP... --held_out SWEEP...
--out MODEL.json` (fit and evaluate a forecaster). Bad input is one line, exit code 2."""

from __future__ import annotations

from grokscope.cli.errors import UsageError, reading
from grokscope.cli.parsing import Parsed, int_option


def _pct(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def evaluation_table(rows: list[dict]) -> str:
    """The held-out evaluation, one line per cutoff."""
    lines = [f"{'at':>4}  {'runs':>4}  {'gen.':>4}  {'AUC':>5}  {'AUC acc@t':>9}  {'acc':>5}  "
             f"{'majority':>8}  {'Brier':>5}  {'base':>5}  {'step err':>8}  {'baseline':>8}  already"]
    for r in rows:
        if not r["n"]:
            lines.append(f"{r['cutoff']:>4.0%}  {0:>4}  (every held-out run had generalized: {r['already']})")
            continue
        lines.append(f"{r['cutoff']:>4.0%}  {r['n']:>4}  {r['generalize']:>4}  {_pct(r['auc']):>5}  "
                     f"{_pct(r['auc_gen_acc']):>9}  {r['accuracy']:>5.2f}  {r['majority_accuracy']:>8.2f}  "
                     f"{_pct(r['brier']):>5}  {_pct(r['brier_baseline']):>5}  "
                     f"{_pct(r['step_error']):>8}  {_pct(r['step_error_baseline']):>8}  {r['already']}")
    return "\n".join(lines)


def cmd_predict(parsed: Parsed) -> int:
    from grokscope import predict as P

    c = parsed.command
    if c.fit:
        if c.runs or c.step is not None or c.model is not None:
            raise UsageError("fit: give sweeps to --fit (and --held_out, --out), not runs, --step or --model")
        if c.out is None:
            raise UsageError("out: give the model file with --out MODEL.json")
        train = P.run_examples(P.sweep_runs(list(c.fit)))
        model = P.fit(train, source="fit on " + ", ".join(c.fit))
        if c.held_out:
            held = P.run_examples(P.sweep_runs(list(c.held_out)))
            rows = P.evaluate(model, held, train_examples=train)
            model["evaluation"] = {"held_out": list(c.held_out), "runs": len({e["run"] for e in held}),
                                   "rows": rows}
            print(evaluation_table(rows))
        from grokscope.tracking.rundir import atomic_write_json

        atomic_write_json(c.out, model)
        t = model["trained_on"]
        print(f"model: {c.out} (fit on {t['runs']} runs, {t['generalized']} generalize within budget)")
        return 0
    if c.held_out or c.out is not None:
        raise UsageError("held_out: --held_out and --out go with --fit SWEEP")
    if not c.runs:
        raise UsageError("predict: give run directories, or --fit SWEEP to fit a model")
    step = int_option(c.step, "step", 1)
    model = P.load_model(c.model)
    for run in c.runs:
        with reading(run):
            f = P.predict_run(run, model, step)
        where = f"at step {f['step_now']:,} of {f['budget']:,} ({f['step_now'] / f['budget']:.0%})"
        if f["already"]:
            print(f"{run}: {f['split']} accuracy reached 0.99 at step {f['predicted_step']:,} ({where})")
        else:
            print(f"{run}: {where}: P(generalizes within budget) = {f['p_generalize']:.2f}; "
                  + P.when_text(f))
    return 0
