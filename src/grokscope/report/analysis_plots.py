"""Figures of `grokscope analyze` (matplotlib, Agg): spectrum over training, progress measures,
embedding geometry, error maps, neuron clusters, attention. Each returns a {file, id, caption} entry.

They only draw: the analysis package (`analysis/run.py`) computes every array they show (PCA and
frequency-plane coordinates, error maps, neuron frequencies, attention) and passes it in; the
report package never imports the analysis package (the dependency goes one way).
"""

from __future__ import annotations

from pathlib import Path

import torch

from grokscope.report.plots import TEST_COLOR, TRAIN_COLOR, pyplot, save_png, shade_phases


def _entry(path: Path, id_: str, caption: str) -> dict:
    return {"file": str(Path("figures") / path.name), "id": id_, "caption": caption}


def spectrum_heatmap(records: list[dict], keys: list[int], path: Path) -> dict:
    plt = pyplot()
    steps = [r["step"] for r in records]
    S = torch.tensor([r["W_E_spectrum"] for r in records], dtype=torch.float64)  # (ckpt, K)
    S = S / S.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-300)  # per-checkpoint unit norm
    fig, ax = plt.subplots(figsize=(9, 4.2))
    im = ax.imshow(
        S.T.numpy(),
        aspect="auto",
        origin="lower",
        cmap="viridis",
        interpolation="nearest",
        extent=(-0.5, len(steps) - 0.5, 0.5, S.shape[1] + 0.5),
    )
    ticks = sorted({round(i * (len(steps) - 1) / 7) for i in range(8)}) if len(steps) > 1 else [0]
    ax.set_xticks(ticks, [f"{steps[i]:,}" for i in ticks], rotation=30, fontsize=8)
    ax.set_xlabel("checkpoint (step)")
    ax.set_ylabel("frequency k")
    for k in keys:
        ax.annotate(
            f"{k}",
            (len(steps) - 0.5, k),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=7,
            va="center",
            color="crimson",
            annotation_clip=False,
        )
    fig.colorbar(im, ax=ax, label="share of W_E's Fourier norm")
    ax.set_title("Fourier spectrum of the embedding over training" + (f" (key: {keys})" if keys else ""))
    fig.tight_layout()
    return _entry(
        save_png(fig, plt, path),
        "fig-spectrum",
        "Per-frequency norm of W_E (normalised per checkpoint) at every checkpoint; key "
        "frequencies labelled on the right.",
    )


def progress_curves(records: list[dict], phase: dict | None, path: Path) -> dict:
    plt = pyplot()
    steps = [r["step"] for r in records]
    has_pm = any(r.get("restricted_loss") is not None for r in records)
    n = 4 if has_pm else 2
    fig, axes = plt.subplots(n, 1, figsize=(8.5, 2.3 * n + 0.6), sharex=True)

    def line(ax, key, label, color, ls="-"):
        ys = [r.get(key) if r.get(key) is not None else float("nan") for r in records]
        ax.plot(steps, ys, ls, color=color, label=label, lw=1.5, marker=".", ms=3)

    ax = axes[0]
    line(ax, "train_loss", "train loss", TRAIN_COLOR)
    line(ax, "test_loss", "test loss", TEST_COLOR)
    if has_pm:
        line(ax, "restricted_loss", "restricted loss (test)", "tab:green")
        line(ax, "excluded_loss", "excluded loss (train)", "tab:purple")
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8, loc="best")
    i = 1
    if has_pm:
        line(axes[1], "test_restricted_ratio", "test loss / restricted loss", "tab:brown")
        axes[1].set_yscale("log")
        axes[1].set_ylabel("ratio")
        axes[1].legend(fontsize=8)
        line(axes[2], "W_E_gini", "Gini of W_E spectrum", "tab:olive")
        line(axes[2], "W_U_gini", "Gini of W_U spectrum", "tab:cyan")
        axes[2].set_ylabel("Gini")
        axes[2].legend(fontsize=8)
        i = 3
    line(axes[i], "sum_sq_weights", "sum of squared weights", "black")
    axes[i].set_ylabel("Σ θ²")
    axes[i].set_xlabel("step")
    if phase and phase.get("phases"):
        handles = shade_phases(axes, phase["phases"])
        if handles:
            axes[-1].legend(handles=handles, fontsize=7, loc="upper right", title="phase", title_fontsize=7)
    fig.suptitle("Progress measures over checkpoints", fontsize=11)
    fig.tight_layout()
    return _entry(
        save_png(fig, plt, path),
        "fig-progress",
        "Train/test loss with restricted and excluded loss (Nanda et al. 2023), their ratio, "
        "spectrum sparsity and total squared weights at every checkpoint; phases shaded.",
    )


GEOMETRY_COLUMNS = 3  # panels per row: the figure is 10 in (1,000 px) wide, the report's width


def geometry(panels: list[tuple[str, str, torch.Tensor, torch.Tensor]], explained: list[float],
             path: Path) -> dict:
    """Scatter plots of the embedding, one per panel (x label, y label, x coords, y coords) with one
    point per value (coloured by value); `explained`: the PCA explained-variance ratios.

    At most GEOMETRY_COLUMNS panels a row, in a figure as wide as the report shows it, so that
    axis labels (10 pt) and value labels (8 pt) stay readable at the report's scale (~13 / 11 px)
    however many panels there are."""
    plt = pyplot()
    cols = max(1, min(GEOMETRY_COLUMNS, len(panels)))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3.3 * rows + 0.5), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    for ax, (xl, yl, xs, ys) in zip(flat, panels):
        n = len(xs)
        ax.scatter(xs.numpy(), ys.numpy(), c=torch.arange(n).numpy(), cmap="hsv", s=18)
        for v in range(0, n, max(1, n // 8)):
            ax.annotate(str(v), (float(xs[v]), float(ys[v])), fontsize=8, color="dimgray")
        ax.set_xlabel(xl, fontsize=10)
        ax.set_ylabel(yl, fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=8)
    fig.suptitle(
        "Embedding geometry (final checkpoint; colour = value). PCA explained variance: "
        + ", ".join(f"{float(r):.0%}" for r in explained),
        fontsize=11,
    )
    fig.tight_layout()
    return _entry(
        save_png(fig, plt, path),
        "fig-geometry",
        "Embeddings projected on their principal components and on each key frequency's "
        "cos/sin plane: a Fourier embedding draws one circle per key frequency.",
    )


def error_maps(maps: dict[str, dict], path: Path) -> dict:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    colors = ["#ffffff", "#9ecae1", "#fd8d3c", "#31a354", "#de2d26"]
    labels = ["no pair", "train right", "train wrong", "test right", "test wrong"]
    fig, axes = plt.subplots(1, len(maps), figsize=(min(10, 3.4 * len(maps)), 3.7), squeeze=False)
    for ax, (title, m) in zip(axes[0], maps.items()):
        c, tr = m["correct"], m["train"]
        code = torch.where(c < 0, 0, torch.where(tr, torch.where(c == 1, 1, 2), torch.where(c == 1, 3, 4)))
        ax.imshow(code.numpy(), cmap=ListedColormap(colors), vmin=0, vmax=4, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("y", fontsize=9)
        ax.set_ylabel("x", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.legend(
        handles=[Patch(color=c, label=lab) for c, lab in zip(colors[1:], labels[1:])],
        loc="lower center",
        ncol=4,
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _entry(
        save_png(fig, plt, path),
        "fig-errors",
        "Which (x, y) pairs the model gets right at key checkpoints (train pairs in blue/orange, "
        "test pairs in green/red).",
    )


def neurons(nf: dict, path: Path) -> dict:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    clusters = nf["clusters"]
    items = sorted(((k, v) for k, v in clusters.items() if k != "noise"), key=lambda kv: int(kv[0]))
    names = [k for k, _ in items] + (["noise"] if "noise" in clusters else [])
    counts = [v for _, v in items] + ([clusters["noise"]] if "noise" in clusters else [])
    a1.bar(
        range(len(names)), counts, color=["tab:blue"] * len(items) + ["lightgray"] * (len(names) - len(items))
    )
    a1.set_xticks(range(len(names)), names, fontsize=7, rotation=90 if len(names) > 12 else 0)
    a1.set_xlabel("dominant frequency (frac. explained ≥ 0.85)")
    a1.set_ylabel("neurons")
    a2.hist(nf["frac"].numpy(), bins=20, range=(0, 1), color="tab:gray")
    a2.axvline(0.85, color="crimson", ls="--", lw=1)
    a2.set_xlabel("fraction of variance explained by the best frequency")
    fig.suptitle("MLP neurons (final checkpoint)", fontsize=10)
    fig.tight_layout()
    return _entry(
        save_png(fig, plt, path),
        "fig-neurons",
        "Neuron clusters: each neuron's dominant frequency in the 2-D Fourier transform of its "
        "activations over the (x, y) grid.",
    )


def label_noise(result: dict, records: list[dict], path: Path) -> dict:
    """Label noise (analysis/noise.py): the corrupted examples' accuracy over training, the neurons'
    IPR, and the accuracies after pruning the lowest-IPR / random / highest-IPR neurons."""
    plt = pyplot()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3.4))
    for key, label, color in (("train_noisy_acc", "corrupted examples, given labels", "crimson"),
                              ("train_noisy_true_acc", "corrupted examples, true labels", "tab:green"),
                              ("test_acc", "test", "tab:blue")):
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None and r["step"] > 0]
        if pts:
            a1.plot(*zip(*pts), label=label, color=color, lw=1.4)
    a1.set_xscale("log")
    a1.set_ylim(-0.02, 1.02)
    a1.set_xlabel("step")
    a1.set_ylabel("accuracy")
    a1.legend(fontsize=7)
    a2.hist(result["ipr"], bins=30, color="tab:gray")
    a2.set_xlabel("neuron IPR (Fourier spectrum of input weights)")
    a2.set_ylabel("neurons")
    fr = [r["fraction"] for r in result["prune"]]
    for order, ls in (("low_ipr", "-"), ("random", ":"), ("high_ipr", "--")):
        a3.plot(fr, [r[order]["train_noisy"] for r in result["prune"]], ls=ls, color="crimson",
                label=f"corrupted labels kept ({order.replace('_', ' ')} first)")
        a3.plot(fr, [r[order]["test"] for r in result["prune"]], ls=ls, color="tab:blue",
                label=f"test ({order.replace('_', ' ')} first)")
    a3.set_xlabel("fraction of neurons pruned")
    a3.set_ylabel("accuracy")
    a3.set_ylim(-0.02, 1.02)
    a3.legend(fontsize=6)
    fig.tight_layout()
    return _entry(
        save_png(fig, plt, path),
        "fig-label-noise",
        "Label noise: accuracy of the corrupted training examples on the labels they were given and "
        "on their true labels, with test accuracy; the neurons' IPR; pruning the lowest-IPR "
        "(memorizing) neurons first (solid) against random (dotted) and highest-IPR (dashed) ones.",
    )


def attention(att: torch.Tensor, path: Path) -> dict:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    H, T = att.shape
    width = 0.8 / H
    for h in range(H):
        ax.bar([t + h * width for t in range(T)], att[h].numpy(), width, label=f"head {h}")
    ax.set_xticks([t + 0.4 - width / 2 for t in range(T)], ["x", "op", "y", "="][:T])
    ax.set_ylabel("mean attention from '='")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _entry(
        save_png(fig, plt, path),
        "fig-attention",
        "Mean attention of the answer position to each input position, per head (layer 0).",
    )


def draw_all(
    fig_dir: Path,
    *,
    records: list[dict],
    keys: list[int],
    phase: dict | None,
    geometry_panels: tuple[list, list[float]] | None = None,
    maps: dict[str, dict] | None = None,
    neuron_freqs: dict | None = None,
    attention_weights: torch.Tensor | None = None,
) -> list[dict]:
    """Draw every analysis figure whose data is given; returns their entries.

    records: analysis.jsonl records; keys: key frequencies; phase: `detect.analyze` of the metrics;
    geometry_panels: (panels, explained) for `geometry`; maps: {title: error map} for `error_maps`;
    neuron_freqs: the final checkpoint's neuron frequencies; attention_weights: (heads, positions).
    """
    fig_dir = Path(fig_dir)
    out = []
    if all("W_E_spectrum" in r for r in records):
        out.append(spectrum_heatmap(records, keys, fig_dir / "fourier_spectrum.png"))
    out.append(progress_curves(records, phase, fig_dir / "progress_measures.png"))
    if geometry_panels is not None:
        out.append(geometry(*geometry_panels, fig_dir / "geometry.png"))
    if maps:
        out.append(error_maps(maps, fig_dir / "error_maps.png"))
    if neuron_freqs is not None:
        out.append(neurons(neuron_freqs, fig_dir / "neurons.png"))
    if attention_weights is not None:
        out.append(attention(attention_weights, fig_dir / "attention.png"))
    return out
