"""The calibration of `grokscope predict` (docs/predict.md), end to end.

1. The two sweeps (skipped when their directories hold them already; resumable):

       train: grokscope sweep --preset demo --axis optim.weight_decay=0.3,0.7,1.5,3
              --axis task.train_fraction=0.3,0.4,0.5,0.6 --seeds 0,1,2 --train.eval_every 20
       held:  grokscope sweep --preset demo --axis optim.weight_decay=0.5,1,2
              --axis task.train_fraction=0.35,0.45,0.55,0.65 --seeds 3,4,5,6 --train.eval_every 20

   (no weight-decay value, train fraction or seed of the held-out sweep is in the training one).
2. Model choice on the training sweep only: 3-fold cross-validation over its seeds for feature
   sets and L2 penalties (ROC-AUC and median step error at 10 / 25 / 50% of the budget).
3. The model fitted on the whole training sweep, evaluated on the held-out sweep against the
   baselines (`grokscope.predict.evaluate`), and written with its evaluation (--out).

    python benchmarks/predict_calibration.py --dir sweeps/predict [--out src/grokscope/predict_model.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import grokscope.predict as P

SWEEPS = {
    "train": ["--axis", "optim.weight_decay=0.3,0.7,1.5,3", "--axis", "task.train_fraction=0.3,0.4,0.5,0.6",
              "--seeds", "0,1,2"],
    "held": ["--axis", "optim.weight_decay=0.5,1,2", "--axis", "task.train_fraction=0.35,0.45,0.55,0.65",
             "--seeds", "3,4,5,6"],
}
VARIANTS = {
    "all features": P.FEATURES,
    "+ train-loss roughness": (*P.FEATURES, "roughness"),
    "no weight norm": tuple(f for f in P.FEATURES if not f.startswith("norm")),
    "accuracies only": ("progress", "train_acc", "gen_acc", "gen_best", "gen_rise"),
}


def roughness(records: list[dict], step: int) -> float:
    """The dropped feature, for the comparison: std of the changes of log train loss over (t/2, t]."""
    import math

    lt = [math.log(max(r["train_loss"], 1e-12)) for r in records if step / 2 <= r["step"] <= step]
    d = [b - a for a, b in zip(lt, lt[1:])]
    if not d:
        return 0.0
    mean = sum(d) / len(d)
    return (sum((x - mean) ** 2 for x in d) / len(d)) ** 0.5


def examples(sweep: Path) -> list[dict]:
    out = P.run_examples(P.sweep_runs([sweep]))
    cache: dict[str, list] = {}
    for e in out:  # the dropped feature, only for the variant that tries it
        if e["run"] not in cache:
            from grokscope.tracking.rundir import RunDir

            cache[e["run"]] = RunDir(e["run"]).read_metrics()
        e["x"]["roughness"] = roughness(cache[e["run"]], int(e["cutoff"] * e["budget"]))
    return out


def with_features(features):
    class Use:
        def __enter__(self):
            self.old = P.FEATURES
            P.FEATURES = tuple(features)

        def __exit__(self, *exc):
            P.FEATURES = self.old

    return Use()


def cross_validate(train: list[dict], features, l2: float) -> dict:
    """{cutoff: (AUC, median step error, n)} over 3 folds of the training sweep's seeds."""
    seeds = sorted({e["run"].rsplit("seed-", 1)[-1] for e in train})
    scores = {c: ([], [], []) for c in P.REPORT_AT}
    with with_features(features):
        for s in seeds:
            fold = [e for e in train if e["run"].rsplit("seed-", 1)[-1] != s]
            model = P.fit(fold, l2=l2)
            for e in train:
                if e["run"].rsplit("seed-", 1)[-1] != s or e["before"] or e["cutoff"] not in scores:
                    continue
                p, frac = P._score(model, e["x"])
                ps, ys, errs = scores[e["cutoff"]]
                ps.append(p)
                ys.append(e["grokked"])
                if e["grokked"]:
                    errs.append(abs(frac * e["budget"] - e["step"]) / e["step"])
    return {c: (P.roc_auc(ps, ys), P._median(errs), len(ys)) for c, (ps, ys, errs) in scores.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="sweeps/predict", help="where the two sweeps go (DIR/train, DIR/held)")
    ap.add_argument("--out", default=None, help="write the fitted model (with its evaluation) here")
    ap.add_argument("--workers", default="1")
    ap.add_argument("--no_train", action="store_true", help="use the sweeps in DIR as they are")
    a = ap.parse_args()
    root = Path(a.dir)
    for name, axes in ({} if a.no_train else SWEEPS).items():
        cmd = [sys.executable, "-m", "grokscope", "sweep", "--preset", "demo", "--out", str(root / name),
               "--train.eval_every", "20", "--workers", a.workers, "--quiet", *axes]
        subprocess.run(cmd, check=True)
    train, held = examples(root / "train"), examples(root / "held")
    print(f"training sweep: {len({e['run'] for e in train})} runs, "
          f"{len({e['run'] for e in train if e['grokked']})} generalize within the budget")
    print(f"held-out sweep: {len({e['run'] for e in held})} runs, "
          f"{len({e['run'] for e in held if e['grokked']})} generalize within the budget\n")
    print("3-fold cross-validation over the training sweep's seeds: AUC / median step error at "
          + " / ".join(f"{c:.0%}" for c in P.REPORT_AT))
    for label, feats in VARIANTS.items():
        for l2 in (1.0, 3.0, 10.0, 30.0):
            cv = cross_validate(train, feats, l2)
            cells = "   ".join(f"{auc:.3f} / {err:.2f}" for auc, err, _ in cv.values())
            print(f"  {label:<24} L2 {l2:>4g}:  {cells}")
    from grokscope.cli.predict import evaluation_table

    model = P.fit(train, source=f"fit on {root / 'train'} (benchmarks/predict_calibration.py)")
    rows = P.evaluate(model, held, train_examples=train)
    print(f"\nheld-out ({len({e['run'] for e in held})} runs), model fitted on the whole training sweep:")
    print(evaluation_table(rows))
    if a.out:
        from grokscope.tracking.rundir import atomic_write_json

        model["evaluation"] = {"held_out": [str(root / "held")], "runs": len({e["run"] for e in held}),
                               "rows": rows}
        atomic_write_json(a.out, model)
        print(f"model: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
