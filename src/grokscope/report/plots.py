"""Figures (matplotlib, Agg backend; imported only when a figure is drawn)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_curves(records: list[dict], path: str | Path, *, title: str = "",
                events: dict | None = None) -> Path:
    """Train/test accuracy (top) and loss (bottom) against step on a log x axis.

    Step 0 is drawn at step 1 (log axis). Memorization and generalization steps are marked.
    """
    import io

    from grokscope.tracking.rundir import atomic_write_bytes

    plt = _pyplot()
    steps = [max(r["step"], 1) for r in records]
    fig, (ax_acc, ax_loss) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax_acc.plot(steps, [r["train_acc"] for r in records], label="train", color="tab:blue")
    ax_acc.plot(steps, [r["test_acc"] for r in records], label="test", color="tab:red")
    ax_loss.plot(steps, [r["train_loss"] for r in records], label="train", color="tab:blue")
    ax_loss.plot(steps, [r["test_loss"] for r in records], label="test", color="tab:red")
    for key, label, color in (("memorized_step", "memorized", "tab:blue"),
                              ("generalized_step", "generalized", "tab:red")):
        s = (events or {}).get(key)
        if s is not None:
            for ax in (ax_acc, ax_loss):
                ax.axvline(max(s, 1), color=color, ls="--", lw=1, alpha=0.7)
            ax_acc.annotate(f"{label} @ {s}", (max(s, 1), 0.5), rotation=90, fontsize=8,
                            color=color, xytext=(3, 0), textcoords="offset points")
    ax_acc.set_xscale("log")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend(loc="upper left")
    ax_acc.set_title(title)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.set_xlabel("step")
    for ax in (ax_acc, ax_loss):
        ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
