"""Label noise: which neurons memorize the corrupted labels, and what pruning them does
(Doshi, He, Das & Gromov 2023, "To grok or not to grok").

A neuron's input weights over the token values (per operand: the one-hot MLP's first-layer rows,
or the embedding table times the neuron's input weights for the embedding MLP and the transformer,
whose attention is left out) are Fourier transformed; its inverse participation ratio

    IPR = sum_k (|v_k| / ||v||_2)^4     over the non-constant frequencies of every operand

is high for a periodic neuron (one frequency per operand: ~1/2) and low for one spread over many
frequencies. Doshi et al. find the generalizing neurons periodic and the neurons that memorize the
corrupted labels not; removing the low-IPR ones erases the memorized noise (the corrupted examples
get their true labels) without hurting test accuracy. `noise_analysis` measures that on a run:
accuracy on every split after zeroing the output weights of the lowest-IPR neurons, against
zeroing as many random ones (the control) and the highest-IPR ones.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["ipr", "neuron_inputs", "noise_analysis", "noise_curves", "prune"]

FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
SPLITS = ("train_noisy", "train_noisy_true", "train_kept", "test")


def _out_weights(model: torch.nn.Module) -> torch.Tensor:
    """The (n_neurons, out) weights that read the analysed neurons out."""
    if hasattr(model, "layers") and hasattr(model, "W_U"):  # the MLP: its last hidden layer
        return model.W_U
    return model.blocks[0].mlp.W_out


def neuron_inputs(model: torch.nn.Module, p: int) -> list[torch.Tensor]:
    """Per operand, each neuron's input weights over the values 0..p-1: a list of (N, p)."""
    if hasattr(model, "layers") and hasattr(model, "W_U"):
        if len(model.layers) != 1:
            raise ValueError("noise analysis: MLPs with one hidden layer only")
        W = model.layers[0].W  # (d_in, N)
        if model.W_E is None:  # one-hot: the rows of each operand's block
            return [W[i * p:(i + 1) * p].T for i in range(W.shape[0] // p)]
        d = model.W_E.shape[1]
        return [(model.W_E[:p] @ W[i * d:(i + 1) * d]).T for i in range(W.shape[0] // d)]
    E = model.embed.W_E[:p]  # (p, d_model)
    return [(E @ model.blocks[0].mlp.W_in).T]  # (N, p): both operands share the embedding


def ipr(model: torch.nn.Module, p: int) -> torch.Tensor:
    """(N,) inverse participation ratio (r = 2) of each neuron's Fourier spectrum, constant left out."""
    with torch.no_grad():
        spec = torch.cat([torch.fft.rfft(v.double(), dim=-1).abs()[:, 1:] for v in neuron_inputs(model, p)],
                         dim=-1)  # (N, K)
        share = spec / spec.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        return (share**4).sum(-1).float()


@contextlib.contextmanager
def prune(model: torch.nn.Module, neurons: torch.Tensor):
    """Within: the given neurons' output weights are zero (restored on exit)."""
    W = _out_weights(model)
    kept = W.data[neurons].clone()
    W.data[neurons] = 0
    try:
        yield
    finally:
        W.data[neurons] = kept


def _accuracies(model: torch.nn.Module, splits: dict) -> dict[str, float]:
    from grokscope.training.losses import accuracy

    with torch.no_grad():
        return {name: accuracy(model(x), y) for name, (x, y) in splits.items()}


def _eval_splits(task) -> dict:
    s = task.splits
    keep = ~task.noisy
    return {"train_noisy": (s["train_noisy"].inputs, s["train_noisy"].targets),
            "train_noisy_true": (s["train_noisy_true"].inputs, s["train_noisy_true"].targets),
            "train_kept": (s["train"].inputs[keep], s["train"].targets[keep]),
            "test": (s["test"].inputs, s["test"].targets)}


def noise_curves(records: list[dict]) -> dict:
    """From the metrics: when the corrupted labels were memorized most, and what is left at the end."""
    rows = [r for r in records if r.get("train_noisy_acc") is not None]
    if not rows:
        return {}
    peak = max(rows, key=lambda r: r["train_noisy_acc"])
    last = rows[-1]
    return {"peak_step": peak["step"], "peak_noisy_acc": peak["train_noisy_acc"],
            "test_acc_at_peak": peak.get("test_acc"), "final_step": last["step"],
            "final_noisy_acc": last["train_noisy_acc"],
            "final_noisy_true_acc": last.get("train_noisy_true_acc"), "final_test_acc": last.get("test_acc")}


def noise_analysis(model: torch.nn.Module, task, records: list[dict] | None = None,
                   fractions: tuple[float, ...] = FRACTIONS, seed: int = 0) -> dict:
    """IPR of every neuron and the accuracies after pruning the lowest-IPR, random and highest-IPR
    `fractions` of them, on the corrupted examples (given and true labels), the other training
    examples and the test split."""
    values = ipr(model, task.n_values)
    n = values.numel()
    low_first = torch.argsort(values)
    g = torch.Generator().manual_seed(seed)
    orders = {"low_ipr": low_first, "random": torch.randperm(n, generator=g), "high_ipr": low_first.flip(0)}
    splits = _eval_splits(task)
    prune_rows = []
    for f in fractions:
        k = int(round(f * n))
        row = {"fraction": f, "neurons": k}
        for name, order in orders.items():
            with prune(model, order[:k]):
                row[name] = _accuracies(model, splits)
        prune_rows.append(row)
    q = torch.quantile(values, torch.tensor([0.1, 0.5, 0.9]))
    return {"n_neurons": n, "n_noisy": int(task.noisy.sum()), "ipr": [round(float(v), 5) for v in values],
            "ipr_quantiles": {"10%": float(q[0]), "50%": float(q[1]), "90%": float(q[2])},
            "prune": prune_rows, "curves": noise_curves(records or [])}


def best_prune(result: dict) -> dict | None:
    """The low-IPR pruning row that most lowers the corrupted labels' accuracy while keeping the
    test accuracy within 0.02 of the unpruned model's."""
    rows = result["prune"]
    base = rows[0]["low_ipr"]["test"]
    ok = [r for r in rows[1:] if r["low_ipr"]["test"] >= base - 0.02]
    return min(ok, key=lambda r: r["low_ipr"]["train_noisy"]) if ok else None


def card_lines(result: dict) -> list[str]:
    """Evidence lines for the algorithm card."""
    c, lines = result["curves"], []
    if c:
        lines.append(
            f"Corrupted training labels ({result['n_noisy']}): fitted at most {c['peak_noisy_acc']:.0%} "
            f"(step {c['peak_step']:,}, test accuracy {c['test_acc_at_peak']:.0%} there); at step "
            f"{c['final_step']:,} {c['final_noisy_acc']:.0%} of them keep their corrupted label and "
            f"{c['final_noisy_true_acc']:.0%} get the true one, test accuracy {c['final_test_acc']:.0%}.")
    q = result["ipr_quantiles"]
    lines.append(f"Neuron IPR of the Fourier spectrum (10/50/90%): {q['10%']:.3f} / {q['50%']:.3f} / "
                 f"{q['90%']:.3f}.")
    best, base = best_prune(result), result["prune"][0]["low_ipr"]
    if best is not None:
        low, rnd = best["low_ipr"], best["random"]
        lines.append(
            f"Pruning the {best['neurons']} lowest-IPR neurons ({best['fraction']:.0%}): corrupted labels "
            f"{base['train_noisy']:.0%} -> {low['train_noisy']:.0%} kept, their true labels "
            f"{base['train_noisy_true']:.0%} -> {low['train_noisy_true']:.0%}, test {base['test']:.0%} -> "
            f"{low['test']:.0%} (as many random neurons: {rnd['train_noisy']:.0%} / "
            f"{rnd['train_noisy_true']:.0%} / {rnd['test']:.0%}).")
    return lines
