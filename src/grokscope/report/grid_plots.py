"""Figures of `grokscope analyze` on a grid_goals run (matplotlib, Agg): accuracy and rollout success
over training with the goal-id geometry, and the policy maps of one held-out goal. They only draw:
analysis/grid.py computes the numbers."""

from __future__ import annotations

from pathlib import Path

from grokscope.report.plots import TEST_COLOR, TRAIN_COLOR, pyplot, save_png, shade_phases

ARROWS = {0: (0, 0.35), 1: (0, -0.35), 2: (-0.35, 0), 3: (0.35, 0)}  # up, down, left, right as (dx, dy)


def _entry(path: Path, id_: str, caption: str) -> dict:
    return {"file": str(Path("figures") / path.name), "id": id_, "caption": caption}


def curves(records: list[dict], phase: dict | None, gen: str, path: Path) -> dict:
    plt = pyplot()
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax = axes[0]
    for key, color, text in (("train_acc", TRAIN_COLOR, "train"), (f"{gen}_acc", TEST_COLOR, "held-out")):
        ax.plot(steps, [r[key] for r in records], color=color, label=f"{text}: shortest move")
    for split, color, text in (("train", TRAIN_COLOR, "train"), ("test", TEST_COLOR, "held-out")):
        ax.plot(steps, [r[f"{split}_success"] for r in records], color=color, ls="--",
                label=f"{text} goals reached")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("greedy policy")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[1]
    for i, (name, color) in enumerate((("row ids", "tab:orange"), ("column ids", "tab:green"))):
        ax.plot(steps, [r["id_fourier"][i] for r in records], color=color, label=f"{name}: top Fourier pair")
        ax.plot(steps, [r["id_order"][i] for r in records], color=color, ls=":", label=f"{name}: PC1 order")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("goal-id geometry")
    ax.legend(fontsize=8, loc="upper left")
    if any(s > 0 for s in steps):
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("step")
    if phase:
        shade_phases(tuple(axes), phase.get("phases") or [])
    fig.tight_layout()
    save_png(fig, plt, path)
    return _entry(path, "grid-curves", "Greedy policy over training (shortest-move share and goals "
                  "reached, training vs held-out goals) and the geometry of the goal-id embeddings.")


def policy_maps(maps: dict, size: int, path: Path) -> dict:
    plt = pyplot()
    labels = [k for k in ("memorized", "final") if k in maps]
    fig, axes = plt.subplots(1, max(1, len(labels)), figsize=(4.2 * max(1, len(labels)), 4.4), squeeze=False)
    for ax, label in zip(axes[0], labels):
        m = maps[label]
        for x in range(size):
            for y in range(size):
                a = m["actions"][x][y]
                if a < 0:
                    ax.add_patch(plt.Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, color="gold"))
                    continue
                dx, dy = ARROWS[a]
                ax.arrow(x - dx / 2, y - dy / 2, dx, dy, head_width=0.18, length_includes_head=True,
                         color="tab:green" if m["optimal"][x][y] else "tab:red")
        ax.set_xlim(-0.6, size - 0.4)
        ax.set_ylim(-0.6, size - 0.4)
        ax.set_aspect("equal")
        ax.set_xticks(range(size))
        ax.set_yticks(range(size))
        ax.set_title(f"{label} (step {m['step']:,})", fontsize=10)
    goal = maps[labels[0]]["goal"] if labels else None
    fig.suptitle(f"greedy action per cell, held-out goal {goal} (gold); green: a shortest move", fontsize=10)
    fig.tight_layout()
    save_png(fig, plt, path)
    return _entry(path, "grid-policy", "Policy map of a held-out goal at memorization and at the end.")


def draw_all(fig_dir, *, records: list[dict], phase: dict | None, gen: str, maps: dict,
             size: int) -> list[dict]:
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    return [curves(records, phase, gen, fig_dir / "grid_curves.png"),
            policy_maps(maps, size, fig_dir / "policy_maps.png")]
