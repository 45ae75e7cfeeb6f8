"""The algorithm card: a short plain-language statement of what the model computes, with evidence.

A Fourier algorithm is claimed only when the model generalizes (final test accuracy >=
GENERALIZED_MIN, detect's grokking level) and the ablations support it: on the final checkpoint,
keeping only the key frequencies' directions in the logits must keep test accuracy >= 0.9 and
removing them must bring train accuracy down to <= 0.5 (or within 5 points of chance).

When the model has not generalized, a high restricted accuracy is not evidence against the
circuit: it is Nanda et al. 2023's sign that the Fourier circuit has formed and the memorizing
components are still to be cleaned up ("circuit formed, cleanup pending"); a low one means no
circuit is evident yet. The card says which.
"""

from __future__ import annotations

from grokscope import detect

RESTRICTED_MIN = 0.9
EXCLUDED_MAX = 0.5
GENERALIZED_MIN = detect.GROKKED_ACC


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _freqs(keys: list[int]) -> str:
    return "{" + ", ".join(str(k) for k in keys) + "}"


def algorithm_card(
    *,
    task,
    records: list[dict],
    keys: list[int],
    key_source: str,
    final: dict,
    details: dict,
    phase: dict | None,
) -> dict:
    """{'claim': 'fourier' | 'none', 'circuit': str, 'headline': str, 'evidence': [str, ...]} for the
    final checkpoint. `circuit`: 'fourier' (claimed), 'formed' (restricted logits >= RESTRICTED_MIN
    while test accuracy is below GENERALIZED_MIN: circuit formed, cleanup pending), 'unsupported'
    (generalizes, the ablations do not support the key frequencies), 'none' (no circuit evident)
    or 'untested' (no Fourier ablations for this task)."""
    evidence: list[str] = []
    chance = details.get("chance", 0.0)
    acc_line = (
        f"At step {final['step']:,} train accuracy is {_pct(final['train_acc'])} and test accuracy "
        f"{_pct(final['test_acc'])} (chance {_pct(chance)})."
    )
    evidence.append(acc_line)
    generalized = final["test_acc"] >= GENERALIZED_MIN
    if phase:
        verdict = phase.get("verdict") or detect.verdict(phase)
        evidence.append(f"Training curves: {verdict['label']}; outcome class ({detect.OUTCOME_RULE}): "
                        f"{phase.get('phase')}.")
    w = details.get("W_E")
    if w:
        evidence.append(
            f"Embedding Fourier spectrum: Gini {w['gini']:.2f}, the 8 largest of "
            f"{(details['p'] - 1) // 2} frequencies hold "
            f"{_pct(w['top8_mass'])} of the squared norm."
        )
    clusters = details.get("neuron_clusters") or {}
    single = {k: v for k, v in clusters.items() if k != "noise"}  # neurons per frequency
    n = details.get("n_neurons", sum(clusters.values()))
    if clusters:
        if single:
            top = sorted(single.items(), key=lambda kv: -kv[1])[:6]
            evidence.append(
                f"{sum(single.values())} of {n} neurons are explained >= 85% by one frequency "
                f"(largest clusters: " + ", ".join(f"{c} at frequency {k}" for k, c in top) + ")."
            )
        else:
            evidence.append(f"None of the {n} neurons is explained >= 85% by a single frequency.")
    if "pca_explained" in details:
        evidence.append(
            "PCA of the embeddings: the first 6 components explain "
            + ", ".join(_pct(r) for r in details["pca_explained"])
            + " of the variance."
        )
    ra, ea = final.get("restricted_acc"), final.get("excluded_acc")
    fourier_task = "restricted_acc" in final
    claim, circuit = "none", "untested"
    not_gen = f"test accuracy {_pct(final['test_acc'])}, below {_pct(GENERALIZED_MIN)}"
    if fourier_task and keys:
        evidence.append(
            f"Key frequencies {_freqs(keys)} (from the {key_source}). Keeping only their "
            f"directions in the logits gives {_pct(ra)} test accuracy (restricted loss "
            f"{final['restricted_loss']:.3g} vs test loss {final['test_loss']:.3g}); removing "
            f"them gives {_pct(ea)} train accuracy (excluded loss {final['excluded_loss']:.3g})."
        )
        supported = (
            ra is not None
            and ra >= RESTRICTED_MIN
            and ea is not None
            and (ea <= EXCLUDED_MAX or ea <= chance + 0.05)
        )
        if supported and generalized:
            claim = circuit = "fourier"
            circles = details.get("circles", {})
            headline = (
                f"The model embeds x and y on {len(keys)} circle{'s' * (len(keys) != 1)} with "
                f"frequencies {_freqs(keys)} and reads the answer from cos(w_k({task.op}-z)) "
                f"(w_k = 2πk/{details['p']}): keeping only those directions in the logits "
                f"gives {_pct(ra)} test accuracy, removing them gives {_pct(ea)}."
            )
            if circles:
                evidence.append(
                    "Share of the embedding variance in each key frequency's cos/sin plane: "
                    + ", ".join(f"{k}: {_pct(v)}" for k, v in circles.items())
                    + "."
                )
        elif not generalized and ra is not None and ra >= RESTRICTED_MIN:
            circuit = "formed"
            headline = (
                f"Circuit formed, cleanup pending: the model has not generalized ({not_gen}), yet "
                f"keeping only the directions of frequencies {_freqs(keys)} in the logits already "
                f"gives {_pct(ra)} test accuracy (removing them leaves {_pct(ea)} train accuracy). "
                f"In Nanda et al. 2023's terms the Fourier circuit has formed and the memorizing "
                f"components are not yet cleaned up; no algorithm is claimed until test accuracy "
                f"follows."
            )
        elif not generalized:
            circuit = "none"
            headline = (
                f"No circuit yet: the model has not generalized ({not_gen}) and keeping only the "
                f"frequencies its logits lean on, {_freqs(keys)}, gives only {_pct(ra)} test accuracy "
                f"(below {_pct(RESTRICTED_MIN)}), so no Fourier circuit is evident; no algorithm is "
                f"claimed."
            )
        else:
            circuit = "unsupported"
            headline = (
                f"The model generalizes but the ablations do not support a Fourier algorithm on "
                f"{_freqs(keys)}: keeping only those directions gives {_pct(ra)} test accuracy, "
                f"removing them leaves {_pct(ea)} train accuracy."
            )
    elif fourier_task:
        circuit = "none"
        headline = (
            "No sparse set of key frequencies stands out in the logits or the embedding, so no "
            "Fourier algorithm is claimed"
            + (" although the model generalizes." if generalized
               else f"; the model has not generalized ({not_gen}).")
        )
        if generalized and n and sum(single.values()) >= n / 2:
            headline += (
                f" Still, {sum(single.values())} of {n} neurons each respond to one frequency, spread "
                f"over {len(single)} frequencies: a dense Fourier solution (as in Gromov 2023's analytic "
                "MLP) that the sparse-key ablation cannot test."
            )
    elif task.kind == "modular":
        headline = (
            f"The Fourier ablations are defined for x+y and x-y; for {task.op} only the generic "
            f"evidence is shown"
            + (" (the model generalizes)." if generalized
               else f" (the model has not generalized: {not_gen}).")
        )
    else:
        headline = f"No algorithm is claimed for {task.op} on permutations; the generic evidence is shown" + (
            " (the model generalizes)." if generalized else f" (the model has not generalized: {not_gen})."
        )
    return {"claim": claim, "circuit": circuit, "headline": headline, "evidence": evidence}
