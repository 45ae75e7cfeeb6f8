"""Early warning: from a run's curves so far, the probability that it generalizes within its
budget, and when.

A run at step t of a budget of B steps is described by a few numbers read from its metrics
(evaluations up to t; `features`), each a signal a paper proposes or a plain trend:

- progress t/B; train and generalization-split accuracy at t; the best generalization accuracy so far
- the generalization accuracy's rise over the second half of the window (acc(t) - acc(t/2))
- the log-loss trends over the second half: log L(t) - log L(t/2), train and generalization split
- the memorization step / B (1 when train accuracy has not reached 0.99 yet), and whether it has
- the weight norm against its start, log w(t)/w(0), and its trend log w(t)/w(t/2): Omnigrok's
  picture, where generalization waits for the norm to shrink toward the generalizing norm

(The train loss's roughness between evaluations, a stand-in for Notsawo et al. 2023's oscillation
signature, was tried and left out: it added nothing in cross-validation and depends on how densely
a run is evaluated; docs/predict.md.)

A logistic regression on these (standardized, L2 penalty 10, fitted by Newton's method) gives
P(the generalization split reaches accuracy 0.99 within the budget); a ridge regression on the
runs that did gives log(step / B). Both are fitted on the runs of training sweeps, each run
sampled at several points of its budget (`CUTOFFS`), and evaluated on a separate held-out sweep
at 10%, 25% and 50% of the budget (`evaluate`): ROC-AUC, accuracy at P = 0.5, the median relative
error of the predicted step, against the majority class and against the generalization accuracy
at t as a score. A run that has already generalized at t is answered from its curve (P = 1).

The fitted model is plain JSON (numbers only; loading it runs no code). The one shipped with
grokscope (`predict_model.json`) was fitted on modular-addition sweeps of the demo preset; see
docs/predict.md for its numbers and where it is wrong.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from grokscope.errors import ConfigError

__all__ = ["CUTOFFS", "FEATURES", "evaluate", "features", "fit", "forecast_text", "live_text", "load_model",
           "predict_run", "run_examples"]

FEATURES = ("progress", "train_acc", "gen_acc", "gen_best", "gen_rise", "train_loss_trend", "gen_loss_trend",
            "memorized_at", "memorized", "norm_ratio", "norm_trend")
CUTOFFS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
"""Points of the budget at which each training run is sampled."""
REPORT_AT = (0.1, 0.25, 0.5)
LEVEL = 0.99
MODEL_FORMAT = 1
DEFAULT_MODEL = Path(__file__).with_name("predict_model.json")


# -------------------------------------------------------------------------------------- features


def _at(records: list[dict], step: float) -> dict:
    """The last record at or before `step` (the first record when none is)."""
    best = records[0]
    for r in records:
        if r["step"] > step:
            break
        best = r
    return best


def _log(v) -> float:
    return math.log(max(float(v), 1e-12))


def features(records: list[dict], budget: int, step: int, split: str = "test") -> dict[str, float]:
    """The FEATURES of a run seen up to `step` of `budget` (records: its metrics, evaluations)."""
    seen = [r for r in records if r["step"] <= step and r.get(f"{split}_acc") is not None]
    if len(seen) < 2:
        raise ConfigError(f"predict: the run has {len(seen)} evaluations up to step {step:,}; need 2")
    now, half, first = seen[-1], _at(seen, step / 2), seen[0]
    g, gl = f"{split}_acc", f"{split}_loss"
    mem = next((r["step"] for r in seen if (r.get("train_acc") or 0) >= LEVEL), None)
    norm = now.get("weight_norm")
    return {
        "progress": step / budget,
        "train_acc": now.get("train_acc") or 0.0,
        "gen_acc": now[g],
        "gen_best": max(r[g] for r in seen),
        "gen_rise": now[g] - half[g],
        "train_loss_trend": _log(now["train_loss"]) - _log(half["train_loss"]),
        "gen_loss_trend": _log(now[gl]) - _log(half[gl]) if now.get(gl) is not None else 0.0,
        "memorized_at": (mem if mem is not None else budget) / budget,
        "memorized": float(mem is not None),
        "norm_ratio": _log(norm) - _log(first["weight_norm"]) if norm else 0.0,
        "norm_trend": _log(norm) - _log(half["weight_norm"]) if norm else 0.0,
    }


def _generalized_at(records: list[dict], split: str, upto: float | None = None) -> int | None:
    """The first evaluation with the split's accuracy >= LEVEL (up to `upto`), or None."""
    for r in records:
        if upto is not None and r["step"] > upto:
            return None
        if (r.get(f"{split}_acc") or 0) >= LEVEL:
            return r["step"]
    return None


def _read_run(path: str | os.PathLike) -> dict:
    from grokscope.report.runinfo import generalization_split
    from grokscope.tracking.rundir import RunDir

    rd = RunDir(path)
    if not rd.config.is_file():
        raise ConfigError(f"run: {str(path)!r} is not a run directory (no config.json)")
    cfg = rd.read_config_dict()
    summary = rd.read_summary() if rd.summary.is_file() else {}
    return {"path": str(path), "budget": int(cfg["train"]["steps"]), "records": rd.read_metrics(),
            "split": generalization_split(summary, cfg), "finished": summary.get("status") == "completed"}


def run_examples(paths: list, cutoffs: tuple[float, ...] = CUTOFFS) -> list[dict]:
    """For each finished run directory and cutoff: {run, cutoff, x (features), grokked (within the
    budget), step (the first evaluation at >= 0.99, or None), before (generalized by the cutoff)}."""
    out = []
    for p in paths:
        run = _read_run(p)
        if not run["finished"] or len(run["records"]) < 3:
            continue
        gen = _generalized_at(run["records"], run["split"])
        for c in cutoffs:
            t = int(c * run["budget"])
            try:
                x = features(run["records"], run["budget"], t, run["split"])
            except ConfigError:
                continue
            out.append({"run": run["path"], "cutoff": c, "x": x, "grokked": gen is not None,
                        "step": gen, "budget": run["budget"], "before": gen is not None and gen <= t})
    return out


def sweep_runs(sweeps: list) -> list[str]:
    """The run directories of sweep directories (or run directories given directly)."""
    paths = []
    for s in sweeps:
        s = Path(s)
        if (s / "runs").is_dir():
            paths += sorted(str(p) for p in (s / "runs").iterdir()
                            if p.is_dir() and not p.name.startswith("."))
        elif (s / "config.json").is_file():
            paths.append(str(s))
        else:
            raise ConfigError(f"predict: {str(s)!r} is neither a sweep nor a run directory")
    return paths


# ----------------------------------------------------------------------------------- the models


def _matrix(examples: list[dict]):
    import numpy as np

    return np.array([[e["x"][n] for n in FEATURES] for e in examples], dtype=float)


def _logistic(X, y, l2: float):
    """Weights (bias first) of an L2-penalized logistic regression, Newton's method."""
    import numpy as np

    A = np.hstack([np.ones((len(X), 1)), X])
    w = np.zeros(A.shape[1])
    pen = np.full(A.shape[1], l2)
    pen[0] = 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(A @ w, -30, 30)))
        grad = A.T @ (p - y) + pen * w
        H = (A * (p * (1 - p))[:, None]).T @ A + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(H, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _ridge(X, y, l2: float):
    import numpy as np

    A = np.hstack([np.ones((len(X), 1)), X])
    pen = np.full(A.shape[1], l2)
    pen[0] = 0.0
    return np.linalg.solve(A.T @ A + np.diag(pen), A.T @ y)


L2 = 10.0
"""The penalty of both regressions, chosen by 3-fold cross-validation over the seeds of the training
sweep (1, 3, 10, 30 tried; docs/predict.md)."""


def fit(examples: list[dict], *, l2: float = L2, source: str = "") -> dict:
    """The model (plain JSON-able dict) fitted on `run_examples` of training runs. Examples whose
    run had generalized by the cutoff are left out: those are answered from the curve."""
    import numpy as np

    ex = [e for e in examples if not e["before"]]
    if len(ex) < 10 or len({e["grokked"] for e in ex}) < 2:
        raise ConfigError(f"predict: need runs that generalize and runs that do not to fit; got {len(ex)} "
                          f"examples, {sum(e['grokked'] for e in ex)} that generalize")
    X = _matrix(ex)
    mean, std = X.mean(0), X.std(0)
    std[std < 1e-9] = 1.0
    Z = (X - mean) / std
    y = np.array([e["grokked"] for e in ex], dtype=float)
    w = _logistic(Z, y, l2)
    pos = [i for i, e in enumerate(ex) if e["grokked"]]
    target = np.array([math.log(ex[i]["step"] / ex[i]["budget"]) for i in pos])
    v = (_ridge(Z[pos], target, l2) if len(pos) >= 3
         else np.array([float(np.mean(target)), *[0.0] * Z.shape[1]]))
    runs = {e["run"] for e in ex}
    return {"format_version": MODEL_FORMAT, "kind": "grokscope.predict", "features": list(FEATURES),
            "mean": mean.tolist(), "std": std.tolist(), "classifier": w.tolist(),
            "step_regressor": v.tolist(),
            "level": LEVEL, "cutoffs": list(CUTOFFS), "l2": l2, "source": source,
            "trained_on": {"runs": len(runs), "examples": len(ex),
                           "generalized": len({e["run"] for e in ex if e["grokked"]})}}


def load_model(path: str | os.PathLike | None = None) -> dict:
    """A fitted model from its JSON (default: the one shipped with grokscope); checked, never executed."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    try:
        m = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"model: cannot read {str(path)!r}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"model: {str(path)!r} is not valid JSON ({e.msg})") from None
    n = len(FEATURES) + 1
    ok = (isinstance(m, dict) and m.get("kind") == "grokscope.predict" and m.get("features") == list(FEATURES)
          and all(isinstance(m.get(k), list) and all(isinstance(v, (int, float)) for v in m[k])
                  for k in ("mean", "std", "classifier", "step_regressor"))
          and len(m["mean"]) == len(m["std"]) == n - 1
          and len(m["classifier"]) == len(m["step_regressor"]) == n)
    if not ok:
        raise ConfigError(f"model: {str(path)!r} is not a grokscope predict model with features "
                          f"{', '.join(FEATURES)}")
    return m


def _score(model: dict, x: dict) -> tuple[float, float]:
    """(P(generalizes within budget), predicted step / budget) for one feature dict."""
    z = [(x[n] - mu) / sd for n, mu, sd in zip(FEATURES, model["mean"], model["std"])]
    w, v = model["classifier"], model["step_regressor"]
    logit = w[0] + sum(a * b for a, b in zip(w[1:], z))
    p = 1 / (1 + math.exp(-max(-30.0, min(30.0, logit))))
    frac = math.exp(max(-30.0, min(30.0, v[0] + sum(a * b for a, b in zip(v[1:], z)))))
    return p, max(frac, x["progress"])


def predict_records(model: dict, records: list[dict], budget: int, split: str = "test",
                    step: int | None = None) -> dict:
    """The forecast for a run seen up to `step` (default: its last evaluation)."""
    step = records[-1]["step"] if step is None else step
    done = _generalized_at(records, split, upto=step)
    if done is not None:
        return {"step_now": step, "budget": budget, "p_generalize": 1.0, "predicted_step": done,
                "already": True, "features": None}
    x = features(records, budget, step, split)
    p, frac = _score(model, x)
    return {"step_now": step, "budget": budget, "p_generalize": p,
            "predicted_step": int(round(frac * budget)), "already": False, "features": x}


def predict_run(path: str | os.PathLike, model: dict | None = None, step: int | None = None) -> dict:
    """The forecast for a run directory (finished or not) at its last evaluation or at `step`."""
    run = _read_run(path)
    if not run["records"]:
        raise ConfigError(f"run: {str(path)!r} has no evaluations yet")
    model = load_model() if model is None else model
    forecast = predict_records(model, run["records"], run["budget"], run["split"], step)
    return {**forecast, "split": run["split"]}


_CANNOT_FORECAST = (ConfigError, TypeError, ValueError, KeyError)
"""What `predict_records` raises for a run it cannot forecast (too few evaluations, no budget, a
metric missing): the text forms say so instead of failing."""


def when_text(f: dict) -> str:
    """'if it does, at about step 2,300' (or: past the budget) for a forecast of `predict_records`."""
    if f["predicted_step"] > f["budget"]:
        return f"its trend points past the budget (about step {f['predicted_step']:,})"
    return f"if it does, at about step {f['predicted_step']:,}"


def forecast_text(records: list[dict], budget, split: str = "test") -> str:
    """One line of the early warning with the shipped model, for `grokscope show` and the report;
    '- (why)' when there is none (no model, too few evaluations, no budget)."""
    try:
        f = predict_records(load_model(), records, int(budget), split)
    except _CANNOT_FORECAST as e:
        return f"- ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return (f"P({split} acc reaches 0.99 within the {f['budget']:,}-step budget) = {f['p_generalize']:.2f} "
            f"at step {f['step_now']:,}; {when_text(f)} (grokscope predict: fitted on demo-preset sweeps, "
            "docs/predict.md)")


def live_text(model: dict | None, records: list[dict], budget: int, split: str = "test") -> str:
    """'P(gen) 0.62' for the progress bar: the forecast of a run that has memorized (train accuracy
    >= 0.99 seen) and not generalized yet; '' before memorization, after generalization, with no
    model or too few evaluations."""
    if model is None or not any((r.get("train_acc") or 0) >= LEVEL for r in records):
        return ""
    try:
        f = predict_records(model, records, budget, split)
    except _CANNOT_FORECAST:
        return ""
    return "" if f["already"] else f"P(gen) {f['p_generalize']:.2f}"


# ---------------------------------------------------------------------------------- evaluation


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve (ties count half); None when a class is missing."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _median(v: list[float]) -> float | None:
    from grokscope.sweep.cells import quantile

    return quantile(sorted(v), 0.5) if v else None


def evaluate(model: dict, examples: list[dict], at: tuple[float, ...] = REPORT_AT,
             train_examples: list[dict] | None = None) -> list[dict]:
    """Per cutoff in `at`, over the held-out runs not yet generalized there: n, how many then
    generalize, ROC-AUC of P, accuracy at P >= 0.5, the Brier score, the median relative error
    |pred - true| / true of the step (runs that generalize), and the baselines: the majority class
    (accuracy; AUC 0.5), the training runs' rate of generalizing as a constant P (Brier), the
    generalization accuracy at the cutoff as the score (AUC), and the training runs' median step as
    the step (relative error)."""
    rows = []
    for c in at:
        ex = [e for e in examples if abs(e["cutoff"] - c) < 1e-9 and not e["before"]]
        done = sum(1 for e in examples if abs(e["cutoff"] - c) < 1e-9 and e["before"])
        if not ex:
            rows.append({"cutoff": c, "n": 0, "already": done})
            continue
        scored = [_score(model, e["x"]) for e in ex]
        labels = [e["grokked"] for e in ex]
        p = [s[0] for s in scored]
        majority = max(sum(labels), len(labels) - sum(labels)) / len(labels)
        errs = [abs(f * e["budget"] - e["step"]) / e["step"]
                for (_, f), e in zip(scored, ex) if e["grokked"]]
        base_frac, base_rate = None, None
        if train_examples:
            at_c = [e for e in train_examples if not e["before"] and abs(e["cutoff"] - c) < 1e-9]
            base_rate = sum(e["grokked"] for e in at_c) / len(at_c) if at_c else None
            steps = [e["step"] / e["budget"] for e in train_examples if e["grokked"] and not e["before"]
                     and abs(e["cutoff"] - c) < 1e-9]
            base_frac = _median(steps)
        base_errs = ([abs(max(base_frac, c) * e["budget"] - e["step"]) / e["step"]
                      for e in ex if e["grokked"]] if base_frac is not None else [])
        rows.append({
            "cutoff": c, "n": len(ex), "already": done, "generalize": sum(labels),
            "auc": roc_auc(p, labels), "accuracy": sum((q >= 0.5) == y for q, y in zip(p, labels)) / len(ex),
            "majority_accuracy": majority,
            "auc_gen_acc": roc_auc([e["x"]["gen_acc"] for e in ex], labels),
            "step_error": _median(errs), "step_error_baseline": _median(base_errs),
            "brier": sum((q - y) ** 2 for q, y in zip(p, labels)) / len(ex),
            "brier_baseline": (sum((base_rate - y) ** 2 for y in labels) / len(ex)
                               if base_rate is not None else None),
        })
    return rows
