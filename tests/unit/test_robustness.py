"""Adversarial accuracy and local complexity (grokscope.models.robustness) and the image tasks'
measures built on them."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from grokscope import RunConfig, TaskConfig
from grokscope.config import ModelConfig, validate
from grokscope.errors import ConfigError
from grokscope.models import CNN, MLP, build_model
from grokscope.models.robustness import fgsm_accuracy, local_complexity, ortho_directions, pgd_accuracy
from grokscope.tasks import task_from_config


def _cfg(**options):
    return validate(RunConfig(task=TaskConfig(kind="digits", options={"train_size": 300, **options}),
                              model=ModelConfig(arch="mlp", n_layers=1, d_mlp=32)))


@pytest.fixture(scope="module")
def trained():
    """A small MLP fitted to 300 digits (200 full-batch Adam steps): clean accuracy well above chance."""
    cfg = _cfg()
    task = task_from_config(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, task)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = task.splits["train"].inputs, task.splits["train"].targets
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    test = task.splits["test"]
    return model, test.inputs[:300], test.targets[:300], task


def test_pgd_with_eps_zero_is_the_clean_accuracy(trained):
    model, x, y, _ = trained
    clean = float((model(x).argmax(-1) == y).double().mean())
    assert clean > 0.8
    g = torch.Generator().manual_seed(0)
    assert pgd_accuracy(model, x, y, eps=0.0, steps=10, generator=g) == clean
    assert fgsm_accuracy(model, x, y, eps=0.0) == clean


def test_pgd_accuracy_is_non_increasing_in_eps_and_steps_and_below_fgsm_at_large_eps(trained):
    model, x, y, _ = trained
    accs = [pgd_accuracy(model, x, y, eps=e, steps=10, generator=torch.Generator().manual_seed(1))
            for e in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)]
    assert all(a >= b for a, b in itertools.pairwise(accs)), accs
    assert accs[0] > 0.8 and accs[-1] < 0.2  # the attack does break the model
    by_steps = [pgd_accuracy(model, x, y, eps=0.1, steps=k, generator=torch.Generator().manual_seed(1))
                for k in (0, 1, 5, 20)]
    assert all(a >= b for a, b in itertools.pairwise(by_steps)), by_steps
    assert accs[3] <= fgsm_accuracy(model, x, y, eps=0.1) + 0.05


def test_attacks_leave_parameters_gradients_mode_and_global_rng_alone(trained):
    model, x, y, task = trained
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = None
    rng = torch.get_rng_state()
    task.measures(model, torch.device("cpu"))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_pgd_breaks_a_two_class_linear_model_exactly_beyond_its_margin():
    # the worst L∞ perturbation of a 2-class linear model moves every pixel by eps along
    # -sign(w_y - w_other): it flips the class exactly when eps > margin / ||w_y - w_other||_1
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x = torch.full((1, 1, 2, 2), 0.5)  # the box [0, 1] leaves room for eps <= 0.5
    with torch.no_grad():
        out = model(x)[0]
        y = out.argmax().reshape(1)
        w = model[1].weight
        eps_break = float((out[y] - out[1 - y]).abs() / (w[0] - w[1]).abs().sum())
    assert eps_break * 1.05 < 0.5
    assert pgd_accuracy(model, x, y, eps=eps_break * 0.95, steps=20, generator=torch.Generator()) == 1.0
    assert pgd_accuracy(model, x, y, eps=eps_break * 1.05, steps=20, generator=torch.Generator()) == 0.0
    assert fgsm_accuracy(model, x, y, eps=eps_break * 1.05) == 0.0


def test_ortho_directions_are_orthonormal():
    v = ortho_directions(3, 10, 4, torch.Generator().manual_seed(0))  # (3, 4, 10)
    eye = v @ v.transpose(1, 2)
    assert torch.allclose(eye, torch.eye(4, dtype=v.dtype).expand(3, 4, 4), atol=1e-12)


def test_local_complexity_is_zero_for_a_linear_model():
    x = task_from_config(_cfg()).splits["train"].inputs[:20]
    zeros = torch.zeros(20, dtype=torch.float64)
    linear_mlp = MLP(ModelConfig(n_layers=0), None, 10, input_kind="image", input_shape=(1, 8, 8))
    assert torch.equal(local_complexity(linear_mlp, x, radius=1.0, directions=8), zeros)
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    assert torch.equal(local_complexity(plain, x, radius=1.0, directions=8), zeros)


def _brute_force_lc(model, x, radius, v):
    """Count, neuron by neuron and vertex by vertex, the hidden units of a 2-layer MLP whose
    pre-activation takes both signs on the frame x ± r v_p."""
    total = []
    for i in range(x.shape[0]):
        verts = [x[i].flatten() + s * radius * v[i, p] for p in range(v.shape[1]) for s in (1, -1)]
        count = 0
        layers = list(model.layers)
        for k in range(len(layers)):
            for j in range(layers[k].W.shape[1]):
                signs = set()
                for vert in verts:
                    h = vert.to(layers[0].W.dtype)
                    for layer in layers[:k]:
                        h = torch.relu(h @ layer.W + layer.b)
                    signs.add(bool(float(h @ layers[k].W[:, j] + layers[k].b[j]) > 0))
                count += len(signs) == 2
        total.append(count)
    return torch.tensor(total, dtype=torch.float64)


def test_local_complexity_matches_a_brute_force_count_on_a_tiny_relu_net():
    cfg = validate(RunConfig(task=TaskConfig(kind="digits", options={"train_size": 100}),
                             model=ModelConfig(arch="mlp", n_layers=2, d_mlp=6)))
    task = task_from_config(cfg)
    torch.manual_seed(3)
    model = build_model(cfg.model, task)
    x = task.splits["train"].inputs[:5]
    for radius in (0.05, 0.5, 3.0):
        g = torch.Generator().manual_seed(7)
        lc = local_complexity(model, x, radius=radius, directions=3, generator=g)
        v = ortho_directions(5, 64, 3, torch.Generator().manual_seed(7)).float()
        with torch.no_grad():
            assert torch.equal(lc, _brute_force_lc(model, x, radius, v)), radius
    assert float(lc.sum()) > 0  # the large radius does cut hyperplanes


def test_cnn_local_complexity_counts_every_channel_at_every_pixel():
    torch.manual_seed(0)
    model = CNN(ModelConfig(arch="cnn", cnn_channels=(2,), n_layers=0), (1, 8, 8), 10)
    x = task_from_config(_cfg()).splits["train"].inputs[:4]
    lc = local_complexity(model, x, radius=10.0, directions=4)
    assert 0 < float(lc.max()) <= 2 * 8 * 8  # at most every conv neuron (2 channels x 64 pixels)


def test_digits_task_logs_every_measure_per_split_and_they_are_reproducible():
    task = task_from_config(_cfg(robust_n=20, lc_directions=4, pgd_steps=3))
    assert task.measure_names == ("train_pgd_acc", "test_pgd_acc", "train_fgsm_acc", "test_fgsm_acc",
                                  "train_lc", "test_lc", "random_lc")
    assert task.measure_cost == 40 * (4 * 3 + 1 + 4 + 8) + 20 * 8
    torch.manual_seed(0)
    model = build_model(_cfg().model, task)
    a, b = task.measures(model, torch.device("cpu")), task.measures(model, torch.device("cpu"))
    assert a == b and set(a) == set(task.measure_names)
    assert task_from_config(_cfg(robust_n=0)).measure_names == ()


@pytest.mark.parametrize("option, value, message", [
    ("pgd_eps", -0.1, "task.options.pgd_eps: must be a number >= 0, got -0.1"),
    ("lc_directions", 65, "task.options.lc_directions: must be an integer in 1..64 (the pixels), got 65"),
    ("lc_radius", 0.0, "task.options.lc_radius: must be a number > 0, got 0.0"),
    ("robust_n", -1, "task.options.robust_n: must be an integer >= 0, got -1"),
])
def test_bad_robustness_option_is_one_line_naming_it(option, value, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        _cfg(**{option: value})
