"""Figures of `grokscope analyze` on an image run (matplotlib, Agg): weight norm against the α = 1
reference with accuracy, robustness and local complexity, per-class accuracy over checkpoints,
confusion matrices and first-layer filters at the key checkpoints. They only draw: the image
analysis (analysis/images.py) computes the arrays."""

from __future__ import annotations

from pathlib import Path

import torch

from grokscope.report.plots import TEST_COLOR, TRAIN_COLOR, pyplot, save_png, series, shade_phases


def _entry(path: Path, id_: str, caption: str) -> dict:
    return {"file": str(Path("figures") / path.name), "id": id_, "caption": caption}


def _log_x(ax, steps: list[int]) -> None:
    if any(s > 0 for s in steps):
        ax.set_xscale("symlog", linthresh=1)


def norm_curve(records: list[dict], phase: dict | None, reference: tuple[float, str], gen: str,
               path: Path) -> dict:
    plt = pyplot()
    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    if phase:
        shade_phases((ax,), phase.get("phases") or [])
    ax.plot(steps, [r["weight_norm"] for r in records], color="black", lw=1.8, label="weight norm", zorder=3)
    ax.axhline(reference[0], color="crimson", ls="--", lw=1.2, label=f"α = 1 reference ({reference[0]:.1f})")
    ax.set_ylabel("global L2 norm")
    ax.set_xlabel("step")
    _log_x(ax, steps)
    acc = ax.twinx()
    acc.plot(steps, [r["train_acc"] for r in records], color=TRAIN_COLOR, lw=1.2, label="train acc")
    acc.plot(steps, [r[f"{gen}_acc"] for r in records], color=TEST_COLOR, lw=1.2, label=f"{gen} acc")
    acc.set_ylim(0, 1.02)
    acc.set_ylabel("accuracy")
    lines = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center left")
    ax.set_title("Weight norm over training (Omnigrok's Goldilocks norm: the α = 1 reference)", fontsize=10)
    fig.tight_layout()
    return _entry(save_png(fig, plt, path), "fig-image-norm",
                  f"Global weight norm at every checkpoint against the α = 1 reference ({reference[1]}), "
                  "with train and test accuracy; phases shaded.")


def robustness_curves(metrics: list[dict], phase: dict | None, gen: str, path: Path) -> dict:
    """Clean, PGD and FGSM accuracy of the generalization split (top) and local complexity at
    train, test and random points (bottom) from metrics.jsonl, phases shaded."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.6), sharex=True)
    if phase:
        shade_phases((top, bottom), phase.get("phases") or [])

    for key, color, label in ((f"{gen}_acc", TEST_COLOR, f"{gen} acc (clean)"),
                              (f"{gen}_pgd_acc", "black", f"{gen} PGD acc"),
                              (f"{gen}_fgsm_acc", "grey", f"{gen} FGSM acc"),
                              ("train_acc", TRAIN_COLOR, "train acc (clean)")):
        top.plot(*series(metrics, key), color=color, lw=1.4, label=label)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.legend(fontsize=8, loc="upper left")
    for key, color in (("train_lc", TRAIN_COLOR), (f"{gen}_lc", TEST_COLOR), ("random_lc", "grey")):
        bottom.plot(*series(metrics, key), color=color, lw=1.4, label=key)
    bottom.set_ylabel("local complexity")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=8, loc="upper left")
    _log_x(bottom, [r["step"] for r in metrics])
    top.set_title("Delayed robustness: adversarial accuracy and local complexity", fontsize=10)
    fig.tight_layout()
    return _entry(save_png(fig, plt, path), "fig-robustness",
                  f"Clean, PGD and FGSM accuracy on the {gen} split's measured subset (top) and the "
                  "local complexity at training, test and random points (bottom) at every evaluation; "
                  "phases shaded.")


def per_class(records: list[dict], phase: dict | None, gen: str, path: Path) -> dict:
    plt = pyplot()
    steps = [r["step"] for r in records]
    nan = float("nan")
    acc = torch.tensor([[nan if v is None else v for v in r["per_class"]] for r in records])  # (ckpt, C)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    if phase:
        shade_phases((ax,), phase.get("phases") or [])
    cmap = plt.get_cmap("tab10")
    for c in range(acc.shape[1]):
        ax.plot(steps, acc[:, c].numpy(), color=cmap(c % 10), lw=1.2, label=str(c))
    _log_x(ax, steps)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{gen} accuracy")
    ax.legend(title="class", fontsize=7, ncol=2, loc="lower right")
    ax.set_title(f"Per-class {gen} accuracy over checkpoints", fontsize=10)
    fig.tight_layout()
    return _entry(save_png(fig, plt, path), "fig-per-class", f"Accuracy of each class on the {gen} split at "
                                                             "every checkpoint.")


def confusion_matrices(mats: dict[str, torch.Tensor], gen: str, path: Path) -> dict:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(mats), figsize=(3.3 * len(mats), 3.5), squeeze=False)
    for ax, (title, m) in zip(axes[0], mats.items()):
        rows = m.double().sum(1, keepdim=True).clamp_min(1)
        ax.imshow((m.double() / rows).numpy(), cmap="Blues", vmin=0, vmax=1)
        n = m.shape[0]
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    if int(m[i, j]):
                        ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=6,
                                color="white" if m[i, j] / rows[i, 0] > 0.5 else "black")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _entry(save_png(fig, plt, path), "fig-confusion",
                  f"Confusion matrices on the {gen} split at the key checkpoints (counts; colour: share of "
                  "the true class).")


def filter_images(images: dict[str, torch.Tensor], path: Path) -> dict:
    plt = pyplot()
    k = max(int(v.shape[0]) for v in images.values())
    cols = min(k, 8)
    rows_each = -(-k // cols)
    n_rows = rows_each * len(images)
    fig, axes = plt.subplots(n_rows, cols, figsize=(1.1 * cols, 1.2 * n_rows + 0.3),
                             squeeze=False)
    for block, (title, w) in enumerate(images.items()):
        for i in range(rows_each * cols):
            ax = axes[block * rows_each + i // cols][i % cols]
            ax.set_axis_off()
            if i < w.shape[0]:
                lim = float(w[i].abs().max()) or 1.0
                ax.imshow(w[i].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            if i == 0:
                ax.set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    return _entry(save_png(fig, plt, path), "fig-filters",
                  "First-layer weights as images (the largest-norm filters, first channel; red positive, "
                  "blue negative, each on its own scale) at the key checkpoints.")


def draw_all(fig_dir, *, records: list[dict], phase: dict | None, reference: tuple[float, str], gen: str,
             confusions: dict[str, torch.Tensor], filters: dict[str, torch.Tensor],
             metrics: list[dict] = ()) -> list[dict]:
    """Every image-analysis figure; returns their {file, id, caption} entries. `metrics`: the run's
    metrics.jsonl records (the robustness figure when they hold PGD accuracy)."""
    fig_dir = Path(fig_dir)
    out = [norm_curve(records, phase, reference, gen, fig_dir / "image_norm.png"),
           per_class(records, phase, gen, fig_dir / "per_class.png")]
    if any(f"{gen}_pgd_acc" in r for r in metrics):
        out.append(robustness_curves(list(metrics), phase, gen, fig_dir / "robustness.png"))
    if confusions:
        out.append(confusion_matrices(confusions, gen, fig_dir / "confusion.png"))
    if filters:
        out.append(filter_images(filters, fig_dir / "filters.png"))
    return out
