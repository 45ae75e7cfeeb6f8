"""`grokscope analyze` on an image run: weight norm against the α = 1 reference, confusion matrices
and per-class accuracy over checkpoints, the first layer's weights as images, the robustness and
local-complexity summary, and the generic algorithm card (what changed, with numbers).

Called by `grokscope.analysis.run.analyze` for tasks with image inputs; writes the same files as
the table analysis (analysis.jsonl, analysis.json with its card and figure list).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from grokscope import detect
from grokscope.analysis.progress import sum_squared_weights
from grokscope.models import build_model

__all__ = ["confusion", "first_layer_images", "lc_phases", "reference_norm", "robustness_summary",
           "weight_norm"]

SATURATION_GAP = 0.01  # clean test accuracy is "saturated" from the first evaluation within this of its best
LC_CHANGE = 0.05  # a local-complexity phase needs a relative change of at least this


def weight_norm(state: dict) -> float:
    """Global L2 norm of every floating tensor of a state dict."""
    return math.sqrt(sum_squared_weights(state))


def reference_norm(cfg, task, reference_state: dict | None = None) -> tuple[float, str]:
    """(norm, what it is): the weight norm of an α = 1 solution when its final state is given
    (a reference run's), else of the same architecture at α = 1 initialization with the run's seed
    (Omnigrok's Goldilocks zone lies near the standard initialization's norm)."""
    if reference_state is not None:
        return weight_norm(reference_state), "the reference run's final weights"
    torch.manual_seed(cfg.seed)
    model = build_model(replace(cfg.model, init_scale=1.0), task)
    return weight_norm(model.state_dict()), "the same network at α = 1 initialization"


def confusion(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, n_classes) long counts: row = true class, column = predicted class."""
    flat = torch.bincount(target * n_classes + pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def per_class_accuracy(conf: torch.Tensor) -> list[float | None]:
    """Diagonal over row sums (None for a class with no examples)."""
    rows = conf.sum(1)
    return [float(conf[i, i] / rows[i]) if rows[i] else None for i in range(conf.shape[0])]


def first_layer_images(model: torch.nn.Module, input_shape: tuple[int, ...], k: int = 16) -> torch.Tensor:
    """The k first-layer filters with the largest norm, as images (k, H, W) (first input channel):
    the MLP's incoming weights of its first hidden units reshaped to the image, the CNN's first
    conv kernels."""
    convs = getattr(model, "convs", None)
    if convs is not None and len(convs):
        w = convs[0].conv.weight.detach()[:, 0]  # (c_out, k, k)
    else:
        layers = getattr(model, "layers", None)
        W = layers[0].W if layers is not None and len(layers) else model.W_U  # (d_in, d_out)
        w = W.detach().T.reshape(-1, *input_shape)[:, 0]  # (d_out, H, W)
    order = w.flatten(1).norm(dim=1).argsort(descending=True)[:k]
    return w[order].double()


def _at(steps: list[int], values: list[float], step: int | None) -> float | None:
    """The value at the last evaluation at or before `step`."""
    if step is None:
        return None
    found = [v for s, v in zip(steps, values) if s <= step]
    return found[-1] if found else None


def robustness_summary(records: list[dict], split: str = "test") -> dict | None:
    """Clean accuracy's saturation step (the first evaluation whose smoothed `split` accuracy is
    within SATURATION_GAP of its best) and the PGD/FGSM accuracy of `split` there, at its best and
    at the end; None when the records have no PGD accuracy."""
    steps, clean = detect.smoothed_series(records, f"{split}_acc")
    psteps, pgd = detect.smoothed_series(records, f"{split}_pgd_acc")
    if not steps or not psteps:
        return None
    best = max(clean)
    sat = next(s for s, v in zip(steps, clean) if v >= best - SATURATION_GAP)
    fsteps, fgsm = detect.smoothed_series(records, f"{split}_fgsm_acc")
    top = max(range(len(pgd)), key=lambda i: pgd[i])
    return {"split": split, "saturation_step": sat, "clean_at_saturation": _at(steps, clean, sat),
            "clean_final": clean[-1], "pgd_at_saturation": _at(psteps, pgd, sat), "pgd_final": pgd[-1],
            "pgd_best": pgd[top], "pgd_best_step": psteps[top],
            "fgsm_at_saturation": _at(fsteps, fgsm, sat), "fgsm_final": fgsm[-1] if fgsm else None,
            "final_step": psteps[-1]}


def lc_phases(records: list[dict], key: str = "train_lc") -> dict | None:
    """Local complexity's descent -> ascent -> descent (Humayun et al.) on the smoothed `key` curve:
    its start, the lowest point before its highest later point (end of the descent), that highest
    point (end of the ascent) and the end; `phases` names the moves of at least LC_CHANGE relative."""
    steps, lc = detect.smoothed_series(records, key)
    if len(lc) < 3:
        return None
    best = None  # (rise, i_min, i_max): the largest rise from a low point to a later high point
    low = 0
    for j in range(1, len(lc)):
        if lc[j] < lc[low]:
            low = j
        if best is None or lc[j] - lc[low] > best[0]:
            best = (lc[j] - lc[low], low, j)
    _, i0, i1 = best
    scale = max(abs(v) for v in lc) or 1.0
    phases = []
    if lc[0] - lc[i0] >= LC_CHANGE * scale:
        phases.append("descent")
    if lc[i1] - lc[i0] >= LC_CHANGE * scale:
        phases.append("ascent")
        if lc[i1] - lc[-1] >= LC_CHANGE * scale:
            phases.append("descent")
    return {"key": key, "start": lc[0], "min": lc[i0], "min_step": steps[i0], "max": lc[i1],
            "max_step": steps[i1], "final": lc[-1], "final_step": steps[-1], "phases": phases}


def image_card(*, final: dict, records: list[dict], metrics: list[dict], phase: dict | None, ref: tuple,
               gen: str, chance: float, key_steps: dict) -> dict:
    """The generic algorithm card of an image run: what changed between memorization and the end."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    acc = f"{gen}_acc"
    evidence = [f"At step {final['step']:,} train accuracy is {pct(final['train_acc'])} and {gen} "
                f"accuracy {pct(final[acc])} (chance {pct(chance)})."]
    if phase:
        v = phase.get("verdict") or detect.verdict(phase, split=gen)
        evidence.append(f"Training curves: {v['label']}; outcome class ({detect.OUTCOME_RULE}): "
                        f"{phase.get('phase')}.")
    mem = key_steps.get("memorized")
    at_mem = next((r for r in records if mem is not None and r["step"] >= mem), None)
    first, ref_norm = records[0], ref[0]
    norm, ratio = final["weight_norm"], final["weight_norm"] / ref_norm
    line = (f"The weight norm went from {first['weight_norm']:.1f} at step {first['step']:,} to {norm:.1f} "
            f"at step {final['step']:,} ({ratio:.2f}x the α = 1 reference {ref_norm:.1f}, {ref[1]})")
    if at_mem is not None and at_mem is not final:
        line += (f"; at memorization (step {at_mem['step']:,}) it was {at_mem['weight_norm']:.1f} and "
                 f"{gen} accuracy {pct(at_mem[acc])}")
    evidence.append(line + ".")
    classes = [c for c in enumerate(final["per_class"]) if c[1] is not None]
    if classes:
        worst = min(classes, key=lambda c: c[1])
        evidence.append(f"Weakest class at the end: {worst[0]} ({pct(worst[1])} of its {gen} images).")
    rob = robustness_summary(metrics, gen)
    if rob:
        evidence.append(
            f"PGD accuracy on {gen} (measured subset): {pct(rob['pgd_at_saturation'])} when clean accuracy "
            f"saturated (step {rob['saturation_step']:,}, clean {pct(rob['clean_at_saturation'])}), "
            f"{pct(rob['pgd_final'])} at step {rob['final_step']:,} (best {pct(rob['pgd_best'])} at step "
            f"{rob['pgd_best_step']:,}).")
    lc = lc_phases(metrics)
    if lc:
        moves = " -> ".join(lc["phases"]) or "no move of 5% or more"
        evidence.append(
            f"Local complexity at training points: {lc['start']:.1f} at the start, {lc['min']:.1f} at step "
            f"{lc['min_step']:,}, {lc['max']:.1f} at step {lc['max_step']:,}, {lc['final']:.1f} at the end "
            f"({moves}).")
    generalized = final[acc] >= detect.GROKKED_ACC
    ref_text = f"(α = 1 reference {ref_norm:.1f})"
    delayed = (at_mem is not None and final[acc] - at_mem[acc] >= detect.MIN_RISE
               and at_mem["weight_norm"] > norm)
    if delayed:
        level = "generalized" if generalized else f"below the {detect.GROKKED_ACC} grokking level"
        headline = (f"Memorized at step {at_mem['step']:,} with {gen} accuracy {pct(at_mem[acc])}; "
                    f"{gen} accuracy then rose to {pct(final[acc])} ({level}) as the weight norm fell from "
                    f"{at_mem['weight_norm']:.1f} to {norm:.1f} {ref_text}.")
    elif generalized:
        headline = f"Generalizes: {gen} accuracy {pct(final[acc])}, weight norm {norm:.1f} {ref_text}."
    else:
        headline = f"Not generalized: {gen} accuracy {pct(final[acc])}, weight norm {norm:.1f} {ref_text}."
    return {"claim": "none", "circuit": "untested", "headline": headline, "evidence": evidence}


# ------------------------------------------------------------------------------ the driver


def _reference_state(reference) -> dict | None:
    if reference is None:
        return None
    from grokscope.errors import ConfigError
    from grokscope.tracking.rundir import RunDir
    from grokscope.training.checkpoint import newest_good

    rd = RunDir(reference)
    if not rd.config.is_file():
        raise ConfigError(f"reference: {str(reference)!r} is not a run directory (no config.json)")
    return newest_good(rd, what="reference")[2]["model"]


def analyze_images(rd, cfg, task, ckpts: list, t0: float, *, figures: bool, report: bool,
                   reference=None) -> dict:
    """Every checkpoint of an image run (see the module docstring); returns analysis.json's dict.
    `ckpts`: [(step, path)] in step order; corrupt ones are named on stderr and skipped; `t0`: the
    analysis's start (time.perf_counter()), for analysis.json's seconds."""
    from grokscope.analysis.driver import finish, key_checkpoints, readable_states

    ref_state = _reference_state(reference)
    torch.manual_seed(0)
    model = build_model(cfg.model, task)
    model.eval()
    ref = reference_norm(cfg, task, ref_state)
    summary = rd.read_summary() if rd.summary.is_file() else {}
    gen = summary.get("generalization_split", task.generalization_split)
    records, conf, filters = [], {}, {}
    with torch.no_grad():
        for step, state in readable_states(ckpts):
            model.load_state_dict(state)
            rec: dict = {"step": step, "weight_norm": weight_norm(state)}
            for name, split in task.splits.items():
                pred = model(split.inputs).argmax(-1)
                rec[f"{name}_acc"] = float((pred == split.targets).double().mean())
                if name == gen:
                    conf[step] = confusion(pred, split.targets, task.n_classes)
                    rec["per_class"] = per_class_accuracy(conf[step])
            filters[step] = first_layer_images(model, tuple(task.input_shape))
            records.append(rec)
    metrics, phase, key_steps = key_checkpoints(rd, records, summary, gen)
    steps = [r["step"] for r in records]
    final = records[-1]
    card = image_card(final=final, records=records, metrics=metrics, phase=phase, ref=ref, gen=gen,
                      chance=1 / task.n_classes, key_steps=key_steps)
    out = {"format_version": 1, "kind": "images", "steps": steps, "key_freqs": [], "key_source": "none",
           "fourier_task": False, "final": final,
           "details": {"reference_norm": ref[0], "reference": ref[1], "key_steps": key_steps,
                       "robustness": robustness_summary(metrics, gen), "local_complexity": lc_phases(metrics),
                       "confusion": {str(s): conf[s].tolist() for s in dict.fromkeys(key_steps.values())
                                     if s in conf}},
           "card": card, "figures": [], "seconds": None}
    if figures:
        from grokscope.report import image_plots

        shown: dict[str, int] = {}
        for label, s in key_steps.items():  # each checkpoint once, under its first label
            if s is not None and s not in shown.values():
                shown[label] = s
        out["figures"] = image_plots.draw_all(
            rd.figures, records=records, phase=phase, reference=ref, gen=gen, metrics=metrics,
            confusions={f"{label}: step {s:,}": conf[s] for label, s in shown.items() if s in conf},
            filters={f"{label}: step {s:,}": filters[s] for label, s in shown.items() if s in filters})
    return finish(rd, out, records, t0, report)
