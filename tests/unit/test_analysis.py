"""Analysis building blocks against cases with known answers (Gromov's analytic MLP, ideal logits)."""

from __future__ import annotations

import math

import pytest
import torch

from grokscope.analysis import fourier, geometry, probe, progress
from grokscope.analysis.card import algorithm_card
from grokscope.analysis.gromov import gromov_mlp
from grokscope.tasks import build_task


def _grid(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(p).repeat_interleave(p)
    y = torch.arange(p).repeat(p)
    return x, y


def test_fourier_basis_is_orthonormal_with_named_rows():
    for p in (7, 8, 97):
        F, names = fourier.fourier_basis(p)
        torch.testing.assert_close(F @ F.T, torch.eye(p, dtype=torch.float64), atol=1e-10, rtol=0)
        assert names[:3] == ["const", "cos 1", "sin 1"] and len(names) == p


def test_frequency_norms_of_a_pure_cosine_embedding():
    p = 31
    v = torch.arange(p, dtype=torch.float64)
    W = torch.stack([torch.cos(2 * math.pi * 5 * v / p), 3 * torch.sin(2 * math.pi * 9 * v / p)], 1)
    norms = fourier.frequency_norms(W, p)
    assert norms.shape == (15,)
    assert set(torch.nonzero(norms > 1e-8).flatten().add(1).tolist()) == {5, 9}
    # |cos 5| over p points is sqrt(p/2); the sin 9 column three times that
    assert norms[4].item() == pytest.approx(math.sqrt(p / 2))
    assert norms[8].item() == pytest.approx(3 * math.sqrt(p / 2))
    keys, _ = fourier.key_frequencies(norms)
    assert sorted(keys) == [5, 9]


def test_gini_and_ipr_of_one_hot_and_flat_spectra():
    for n in (5, 48, 56):
        one = torch.zeros(n)
        one[3] = 2.5
        flat = torch.full((n,), 0.7)
        assert fourier.gini(one) == pytest.approx((n - 1) / n)
        assert fourier.gini(flat) == pytest.approx(0.0, abs=1e-12)
        assert fourier.ipr(one) == pytest.approx(1.0)
        assert fourier.ipr(flat) == pytest.approx(1 / n)
    assert fourier.gini(torch.tensor([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.5)


@pytest.mark.parametrize("n_neurons", [200, 500])
def test_gromov_analytic_mlp_classifies_every_pair(n_neurons):
    p = 97
    task = build_task("modular", "x+y", p=p, train_fraction=0.5)
    for seed in (0, 1):
        model = gromov_mlp(p, n_neurons, seed=seed)
        logits, _ = probe.run_table(model, task, neurons=False)
        assert logits.shape == (p * p, p)
        assert (logits.argmax(1) == task.z).all()


def test_fourier_analysis_recovers_the_planted_frequencies():
    p, planted = 97, [2, 5, 11, 17, 33, 40]
    model = gromov_mlp(p, 240, freqs=planted, seed=3)
    assert model.planted_freqs == planted
    E = probe.embeddings(model, p)
    for W in (E["x"], E["y"], probe.unembedding(model)):
        keys, _ = fourier.key_frequencies(fourier.frequency_norms(W, p))
        assert sorted(keys) == planted
    task = build_task("modular", "x+y", p=p, train_fraction=0.5)
    logits, acts = probe.run_table(model, task)
    grid = probe.grid_index(task).reshape(-1)
    nf = fourier.neuron_frequencies(acts[grid].reshape(p, p, -1), p)
    assert set(nf["freq"].tolist()) == set(planted)
    assert float(nf["frac"].min()) > 0.99
    assert sum(nf["clusters"].values()) == 240 and nf["clusters"].get("noise", 0) == 0
    coef = fourier.logit_frequency_coefficients(logits[grid].reshape(p, p, p), p)
    keys, _ = fourier.key_frequencies(coef.clamp_min(0))
    assert sorted(keys) == planted
    acc = (logits.argmax(1) == task.z).double().mean().item()
    assert acc > 0.999  # 240 neurons on 6 frequencies: a few pairs of 9,409 are near ties


def _ideal_logits(p: int, keys: list[int], sign: int = 1, scale: float = 1.0) -> torch.Tensor:
    x, y = _grid(p)
    z = torch.arange(p, dtype=torch.float64)
    s = (x + sign * y).to(torch.float64)[:, None] - z[None, :]
    return scale * sum(torch.cos(2 * math.pi * k * s / p) for k in keys)  # (p*p, p)


@pytest.mark.parametrize("sign", [1, -1])
def test_restricted_equals_full_and_excluded_is_chance_for_ideal_logits(sign):
    p, keys = 31, [3, 7, 12]
    L = _ideal_logits(p, keys, sign, scale=4.0)
    x, y = _grid(p)
    labels = (x + sign * y) % p
    g = torch.Generator().manual_seed(0)
    train = torch.rand(p * p, generator=g) < 0.4
    pm = progress.progress_measures(L, labels, train, p, keys, sign)
    assert pm["test_acc"] == 1.0 and pm["restricted_acc"] == 1.0
    assert pm["restricted_loss"] == pytest.approx(pm["test_loss"], rel=1e-9)
    assert pm["test_restricted_ratio"] == pytest.approx(1.0, rel=1e-9)
    assert pm["excluded_loss"] == pytest.approx(math.log(p), rel=1e-9)
    # a wrong key set restricts the logits to nothing useful
    wrong = progress.progress_measures(L, labels, train, p, [1, 2], sign)
    assert wrong["restricted_loss"] == pytest.approx(math.log(p), rel=1e-9)
    assert wrong["excluded_loss"] == pytest.approx(pm["train_loss"], rel=1e-9)


def test_logit_coefficients_of_ideal_logits():
    p, keys = 23, [2, 9]
    L = _ideal_logits(p, keys, scale=1.5).reshape(p, p, p)
    coef = fourier.logit_frequency_coefficients(L, p)
    expected = torch.zeros(11, dtype=torch.float64)
    expected[[1, 8]] = 1.5
    torch.testing.assert_close(coef, expected, atol=1e-9, rtol=0)


def test_rqi_is_one_for_linear_embeddings_and_near_zero_for_random():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(16, generator=g, dtype=torch.float64)
    ideal = torch.arange(31, dtype=torch.float64)[:, None] * v[None, :]
    assert geometry.rqi(ideal) == pytest.approx(1.0)
    random = torch.randn(31, 16, generator=g, dtype=torch.float64)
    assert geometry.rqi(random) < 0.01


def test_pca_and_frequency_plane_find_the_circle():
    p, k = 29, 4
    v = torch.arange(p, dtype=torch.float64)
    w = 2 * math.pi * k / p
    g = torch.Generator().manual_seed(1)
    R = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))[0][:2]  # (2, 8)
    E = torch.stack([torch.cos(w * v), torch.sin(w * v)], 1) @ R  # a circle in a random plane
    _, ratio = geometry.pca(E, 3)
    assert ratio[:2].sum().item() == pytest.approx(1.0) and ratio[2].item() == pytest.approx(0, abs=1e-12)
    coords, frac = geometry.frequency_plane(E, p, k)
    assert frac == pytest.approx(1.0)
    radius = coords.norm(dim=1)
    torch.testing.assert_close(radius, radius.mean().expand(p))
    assert geometry.frequency_plane(E, p, k + 1)[1] == pytest.approx(0.0, abs=1e-12)


def test_error_map_marks_the_wrong_pairs():
    p = 11
    task = build_task("modular", "x+y", p=p, train_fraction=0.5)
    logits = torch.nn.functional.one_hot(task.z, p).double()
    wrong = torch.tensor([0, 5, 17])
    logits[wrong] = torch.nn.functional.one_hot((task.z[wrong] + 1) % p, p).double()
    m = probe.error_map(logits, task)
    assert m["correct"].shape == (p, p)
    assert int((m["correct"] == 0).sum()) == 3 and int((m["correct"] == 1).sum()) == p * p - 3
    for i in wrong.tolist():
        assert m["correct"][task.x[i], task.y[i]] == 0
    assert int(m["train"].sum()) == task.train_idx.numel()
    div = build_task("modular", "x/y", p=p, train_fraction=0.5)  # y = 0 is not in the table
    m = probe.error_map(torch.zeros(div.x.numel(), p), div)
    assert (m["correct"][:, 0] == -1).all() and int((m["correct"] >= 0).sum()) == p * (p - 1)


def _card(final, keys=(3, 7)):
    task = build_task("modular", "x+y", p=31, train_fraction=0.5)
    details = {"p": 31, "chance": 1 / 31}
    return algorithm_card(task=task, records=[final], keys=list(keys), key_source="logits", final=final,
                          details=details, phase=None)


def test_algorithm_card_claims_fourier_only_with_ablation_evidence():
    base = {"step": 1000, "train_acc": 1.0, "test_acc": 0.999, "restricted_loss": 0.01, "test_loss": 0.01,
            "excluded_loss": 3.4, "train_loss": 0.001}
    good = _card({**base, "restricted_acc": 0.999, "excluded_acc": 0.012})
    assert good["claim"] == "fourier"
    assert "{3, 7}" in good["headline"] and "99.9%" in good["headline"] and "1.2%" in good["headline"]
    weak = _card({**base, "restricted_acc": 0.4, "excluded_acc": 0.9})
    assert weak["claim"] == "none" and "do not support" in weak["headline"]
    memorizer = _card({**base, "test_acc": 0.05, "restricted_acc": 0.99, "excluded_acc": 0.01})
    assert memorizer["claim"] == "none" and "not generalized" in memorizer["headline"]
    dense = algorithm_card(task=build_task("modular", "x+y", p=31, train_fraction=0.5), records=[], keys=[],
                           key_source="none", final={**base, "restricted_acc": None, "excluded_acc": None},
                           details={"p": 31, "chance": 1 / 31, "n_neurons": 10,
                                    "neuron_clusters": {"3": 4, "5": 3, "noise": 3}}, phase=None)
    assert dense["claim"] == "none" and "7 of 10 neurons" in dense["headline"] and "over 2 frequencies" in (
        dense["headline"])
    perm = build_task("permutation", "x*y", n=3, train_fraction=0.5)
    generic = algorithm_card(task=perm, records=[], keys=[], key_source="none",
                             final={"step": 10, "train_acc": 1.0, "test_acc": 1.0}, details={}, phase=None)
    assert generic["claim"] == "none" and "permutations" in generic["headline"]


def test_card_tells_a_formed_circuit_from_no_circuit():
    """Restricted logits at 100% while test accuracy is 55%: Nanda et al.'s sign that the circuit
    has formed and cleanup is pending, not evidence against it."""
    base = {"step": 5000, "train_acc": 1.0, "restricted_loss": 0.05, "test_loss": 1.5,
            "excluded_loss": 2.0, "train_loss": 0.001}
    formed = _card({**base, "test_acc": 0.55, "restricted_acc": 1.0, "excluded_acc": 0.4})
    assert formed["claim"] == "none" and formed["circuit"] == "formed"
    assert formed["headline"].startswith("Circuit formed, cleanup pending: the model has not generalized "
                                         "(test accuracy 55.0%, below 95.0%)")
    assert "already gives 100.0% test accuracy" in formed["headline"]
    assert "Nanda et al. 2023" in formed["headline"]
    assert "but keeping only those" not in formed["headline"]
    none = _card({**base, "test_acc": 0.55, "restricted_acc": 0.3, "excluded_acc": 0.9})
    assert none["claim"] == "none" and none["circuit"] == "none"
    assert none["headline"].startswith("No circuit yet: the model has not generalized (test accuracy 55.0%")
    assert "gives only 30.0% test accuracy (below 90.0%)" in none["headline"]
    good = _card({**base, "test_acc": 0.999, "test_loss": 0.01, "restricted_acc": 0.999,
                  "excluded_acc": 0.01})
    assert good["claim"] == good["circuit"] == "fourier"


def test_card_evidence_states_the_thresholds_of_the_curves():
    from grokscope import detect

    records = [{"step": s, "train_acc": 1.0 if s >= 100 else s / 100, "test_acc": 0.55 if s >= 2000 else 0.05}
               for s in range(0, 5001, 50)]
    task = build_task("modular", "x+y", p=31, train_fraction=0.5)
    final = {"step": 5000, "train_acc": 1.0, "test_acc": 0.55, "restricted_acc": 1.0, "excluded_acc": 0.4,
             "restricted_loss": 0.05, "test_loss": 1.5, "excluded_loss": 2.0}
    card = algorithm_card(task=task, records=[final], keys=[3], key_source="logits", final=final,
                          details={"p": 31, "chance": 1 / 31}, phase=detect.analyze(records))
    line = next(e for e in card["evidence"] if e.startswith("Training curves: "))
    assert line == ("Training curves: memorization (test plateau at 0.55 after a partial rise from 0.05; "
                    "never >= 0.95); outcome class (Liu et al. 2022, accuracy 0.9): memorization.")
