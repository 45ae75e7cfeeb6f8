"""Label-noise analysis (analysis/noise.py): the noisy-example splits, neuron IPR, pruning."""

from __future__ import annotations

import dataclasses

import torch

from grokscope.analysis.gromov import gromov_mlp
from grokscope.analysis.noise import ipr, noise_analysis, noise_curves, prune
from grokscope.config import ModelConfig
from grokscope.models import MLP
from tests.conftest import tiny_grokking_config


def _noisy_task(p=23, noise=0.2):
    from grokscope.tasks import task_from_config

    cfg = tiny_grokking_config()
    cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, p=p, label_noise=noise))
    return task_from_config(cfg)


def test_the_noisy_examples_are_logged_with_their_given_and_true_labels():
    t = _noisy_task()
    given, true = t.splits["train_noisy"], t.splits["train_noisy_true"]
    n = int(t.noisy.sum())
    assert n == t.meta["n_noisy"] > 0 and len(given.targets) == len(true.targets) == n
    assert bool((given.targets != true.targets).all())
    assert torch.equal(given.inputs, t.splits["train"].inputs[t.noisy])
    assert torch.equal(true.targets, t.z[t.train_idx][t.noisy])
    assert "train_noisy" not in _noisy_task(noise=0.0).splits


def test_periodic_neurons_have_high_ipr_random_ones_low():
    p = 23
    planted = ipr(gromov_mlp(p, 64, seed=0), p)  # one frequency per operand: IPR 1/2
    assert torch.allclose(planted, torch.full_like(planted, 0.5), atol=1e-3)
    torch.manual_seed(0)
    cfg = ModelConfig(arch="mlp", mlp_input="onehot", n_layers=1, d_mlp=64, activation="quadratic",
                      bias=False)
    rand = ipr(MLP(cfg, n_values=p, n_classes=p), p)
    assert float(rand.max()) < 0.3 and float(rand.median()) < 0.15


def test_prune_zeroes_and_restores_the_output_weights():
    m = gromov_mlp(23, 32, seed=1)
    before = m.W_U.detach().clone()
    with prune(m, torch.tensor([0, 5])):
        assert float(m.W_U.detach()[[0, 5]].abs().sum()) == 0 and torch.equal(m.W_U.detach()[1], before[1])
    assert torch.equal(m.W_U, before)


def test_the_analytic_solution_ignores_the_noise_and_pruning_measures_every_order():
    t = _noisy_task(p=23)
    m = gromov_mlp(23, 400, seed=0)  # solves x+y mod 23: the rule, never the corrupted labels
    out = noise_analysis(m, t, fractions=(0.0, 0.1, 0.9))
    base = out["prune"][0]
    assert base["neurons"] == 0 and base["low_ipr"] == base["random"] == base["high_ipr"]
    assert base["low_ipr"]["test"] == 1.0 and base["low_ipr"]["train_noisy_true"] == 1.0
    assert base["low_ipr"]["train_noisy"] == 0.0
    assert [r["neurons"] for r in out["prune"]] == [0, 40, 360]
    assert out["prune"][2]["random"]["test"] < 1.0  # pruning 90% hurts
    assert out["n_noisy"] == int(t.noisy.sum()) and len(out["ipr"]) == 400


def test_noise_curves_find_the_peak_of_the_memorized_noise():
    recs = [{"step": s, "train_noisy_acc": a, "train_noisy_true_acc": 1 - a, "test_acc": s / 300}
            for s, a in ((0, 0.0), (100, 0.9), (200, 0.5), (300, 0.1))]
    c = noise_curves(recs)
    assert (c["peak_step"], c["peak_noisy_acc"]) == (100, 0.9)
    assert (c["final_noisy_acc"], c["final_noisy_true_acc"]) == (0.1, 0.9)
    assert noise_curves([{"step": 0, "test_acc": 0.1}]) == {}


def test_analyze_adds_the_noise_section_card_lines_and_figure(tmp_path, capsys):
    import json

    from grokscope import train
    from grokscope.cli import main

    cfg = tiny_grokking_config(checkpoint_every=100)
    cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, label_noise=0.1),
                              train=dataclasses.replace(cfg.train, steps=200))
    run = train(cfg, tmp_path / "noisy", progress=False)
    assert run.metrics[-1]["train_noisy_acc"] > 0.9  # the corrupted labels are memorized early
    assert main(["analyze", str(run.path)]) == 0
    a = json.loads((run.path / "analysis.json").read_text())
    assert a["noise"]["n_noisy"] == run.summary["task"]["n_noisy"] > 0
    assert a["noise"]["curves"]["peak_noisy_acc"] == max(r["train_noisy_acc"] for r in run.metrics)
    assert any(line.startswith("Corrupted training labels") for line in a["card"]["evidence"])
    assert any(f["id"] == "fig-label-noise" for f in a["figures"])
    assert (run.path / "figures" / "label_noise.png").is_file()
    html = (run.path / "report.html").read_text()
    assert 'id="fig-label-noise"' in html
    assert 'id="forecast"' in html and "within the 200-step budget" in html  # not generalized: forecast
    capsys.readouterr()
    assert main(["show", str(run.path)]) == 0  # not generalized: show forecasts it
    assert "P(test acc reaches 0.99 within the 200-step budget) = " in capsys.readouterr().out
