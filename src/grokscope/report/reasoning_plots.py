"""Figures of `grokscope analyze` on a composition run (matplotlib, Agg): accuracies per split with
the logit lens over training (the bridge entity at position r1, r2 at position r2, per layer), and
causal tracing over training (the share of answers changed by corrupting h, r1 or r2 at each layer).
They only draw: analysis/reasoning.py computes the numbers."""

from __future__ import annotations

from pathlib import Path

from grokscope.report.plots import TEST_COLOR, TRAIN_COLOR, pyplot, save_png, shade_phases

SPLIT_COLORS = {"train": TRAIN_COLOR, "test_iid": TEST_COLOR, "test_ood": "tab:purple",
                "train_inferred": "tab:cyan", "id_atomic": "tab:green", "ood_atomic": "tab:olive"}


def _entry(path: Path, id_: str, caption: str) -> dict:
    return {"file": str(Path("figures") / path.name), "id": id_, "caption": caption}


def _steps_axis(ax, steps: list[int]) -> None:
    if any(s > 0 for s in steps):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, max(steps) * 1.05)
    ax.set_xlabel("step")


def _layers(ax, steps, records, key, layer, ylabel):
    n = len(records[0][key])
    cmap = pyplot().get_cmap("viridis")
    for i in range(n):
        ax.plot(steps, [r[key][i] for r in records], color=cmap(i / max(1, n - 1)),
                lw=2.4 if i == layer else 1.0, label=f"after layer {i}" if i else "embedding")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(ylabel)


def lens_curves(records: list[dict], phase: dict | None, gen: str, layer: int, path: Path) -> dict:
    plt = pyplot()
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8.4), sharex=True)
    if phase:
        shade_phases(axes, phase.get("phases") or [])
    for name, color in SPLIT_COLORS.items():
        if f"{name}_acc" in records[0]:
            axes[0].plot(steps, [r[f"{name}_acc"] for r in records], color=color, lw=1.4, label=name)
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7, ncol=3)
    _layers(axes[1], steps, records, "bridge_top1", layer, "bridge entity top-1\nat position r1")
    axes[1].legend(fontsize=7, ncol=3)
    _layers(axes[2], steps, records, "r2_mrr", layer, "r2 MRR\nat position r2")
    _steps_axis(axes[2], steps)
    fig.suptitle(f"Logit lens on training two-hop queries ({gen} dates generalization)")
    save_png(fig, plt, path)
    return _entry(path, "lens", f"Accuracy per split and the logit lens over training: the share of training "
                  f"two-hop queries whose bridge entity is the top-1 decoding of each layer's state at "
                  f"position r1 (layer {layer} bold), and r2's MRR at position r2.")


def tracing_curves(records: list[dict], phase: dict | None, layer: int, path: Path) -> dict:
    plt = pyplot()
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8.4), sharex=True)
    if phase:
        shade_phases(axes, phase.get("phases") or [])
    for ax, name in zip(axes, ("h", "r1", "r2")):
        _layers(ax, steps, records, f"trace_{name}", layer, f"answers changed\ncorrupting {name}")
    axes[0].legend(fontsize=7, ncol=3)
    _steps_axis(axes[2], steps)
    fig.suptitle("Causal tracing: a corrupted token's state patched in at one layer")
    save_png(fig, plt, path)
    return _entry(path, "tracing", "Causal tracing over training: the share of training two-hop queries "
                  "whose answer changes when the state after each layer at the position of h, r1 or r2 "
                  "comes from a run with that token corrupted.")


def draw_all(fig_dir, *, records: list[dict], phase: dict | None, gen: str, layer: int) -> list[dict]:
    """Every reasoning figure; returns their {file, id, caption} entries."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    return [lens_curves(records, phase, gen, layer, fig_dir / "lens.png"),
            tracing_curves(records, phase, layer, fig_dir / "tracing.png")]
