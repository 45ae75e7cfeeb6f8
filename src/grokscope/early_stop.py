"""The early-stopping counterfactual: where the usual early stoppers would have ended a run, and
what they would have kept.

The generalization split plays the validation set (a run has no third split), and patience counts
evaluations (Lightning's "validation checks"; Keras counts epochs, and our evaluations are the
checks). Monitoring starts with the first evaluation after step 0, as both libraries first
validate after training. A value improves when it beats the best so far strictly (min_delta 0).

RULES:
- `keras_loss`: Keras `EarlyStopping()` defaults with monitor val_loss: patience 0, so the first
  evaluation whose loss is not below the best stops the run; restore_best_weights False, so the
  weights at that evaluation are kept;
- `lightning_loss`: Lightning `EarlyStopping(monitor="val_loss")` defaults: patience 3, mode min;
- `acc_3` / `acc_10`: validation accuracy, mode max, patience 3 / 10.

`counterfactual(records, split)` returns one dict per rule: the step where it would have stopped
(None: it never triggers within the run) and the generalization accuracy kept there.
"""

from __future__ import annotations

import math

__all__ = ["RULES", "counterfactual"]

RULES = (
    ("keras_loss", "loss", 0, "val loss, patience 0 (Keras EarlyStopping defaults)"),
    ("lightning_loss", "loss", 3, "val loss, patience 3 (Lightning EarlyStopping defaults)"),
    ("acc_3", "acc", 3, "val accuracy, patience 3"),
    ("acc_10", "acc", 10, "val accuracy, patience 10"),
)


def _stop(values: list[tuple[int, float]], higher_is_better: bool, patience: int) -> int | None:
    """The step of the evaluation that ends the run: the patience-th evaluation in a row without
    improvement (both libraries: a non-improving check adds 1 to the wait, stop when wait >=
    patience; an improvement resets it)."""
    best, wait = None, 0
    for step, v in values:
        if best is None or (v > best if higher_is_better else v < best):
            best, wait = v, 0
            continue
        wait += 1
        if wait >= patience:
            return step
    return None


def counterfactual(records: list[dict], split: str = "test") -> list[dict]:
    """[{rule, label, monitor, patience, stopped_step, kept_acc}] for the rules in RULES."""
    out = []
    for name, metric, patience, label in RULES:
        key = f"{split}_{metric}"
        values = [(r["step"], float(r[key])) for r in records
                  if r.get("step", 0) > 0 and isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        step = _stop(values, metric == "acc", patience)
        kept = next((r.get(f"{split}_acc") for r in records if r.get("step") == step), None)
        out.append({"rule": name, "label": label, "monitor": key, "patience": patience,
                    "stopped_step": step, "kept_acc": kept})
    return out
