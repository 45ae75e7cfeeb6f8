"""Sparse parity: labels, splits, the Fourier coefficients and the hidden-progress measures."""

from __future__ import annotations

import re

import pytest
import torch

from grokscope import RunConfig, TaskConfig
from grokscope.config import ModelConfig, validate
from grokscope.errors import ConfigError
from grokscope.models import build_model
from grokscope.tasks import task_from_config
from grokscope.tasks.parity import bits_of, fourier_coefficients


def _task(seed=0, arch="mlp", **options):
    opts = {"n_bits": 12, "k": 3, "n_train": 200, "n_test": 300, "gap_subsets": 20, **options}
    return task_from_config(validate(RunConfig(seed=seed, task=TaskConfig(kind="parity", options=opts),
                                               model=ModelConfig(arch=arch, n_layers=1, d_mlp=64))))


def test_labels_are_the_parity_of_the_hidden_subset_and_splits_are_distinct_and_disjoint():
    t = _task()
    S = t.meta["subset"]
    assert len(S) == 3 and S == sorted(S) and t.input_shape == (12,) and t.n_classes == 2
    for split in t.splits.values():
        x, y = split.inputs, split.targets
        assert set(x.unique().tolist()) == {-1.0, 1.0}
        assert torch.equal(y, (x[:, S].prod(1) < 0).long())  # class 1 where the product is -1
    rows = [tuple(r.tolist()) for s in t.splits.values() for r in s.inputs]
    assert len(rows) == len(set(rows)) == 500  # distinct strings, train and test disjoint
    assert 0.35 < float(t.splits["train"].targets.double().mean()) < 0.65


def test_split_and_subset_are_fixed_by_the_seed():
    a, b, c = _task(seed=1), _task(seed=1), _task(seed=2)
    assert torch.equal(a.splits["train"].inputs, b.splits["train"].inputs) and a.meta == b.meta
    assert not torch.equal(a.splits["train"].inputs, c.splits["train"].inputs)
    assert len({tuple(_task(seed=s).meta["subset"]) for s in range(6)}) > 1


def test_fourier_coefficients_on_the_whole_cube_are_exact():
    x = bits_of(torch.arange(2 ** 6), 6).double()  # every string of 6 bits
    chi = x[:, [0, 2, 5]].prod(1)
    subsets = torch.tensor([[0, 2, 5], [0, 1, 2], [1, 3, 4]])
    expect = lambda *v: torch.tensor(v, dtype=torch.float64)
    assert torch.allclose(fourier_coefficients(chi, x, subsets), expect(1.0, 0.0, 0.0))
    f = 0.5 * chi + 0.25 * x[:, [1, 3, 4]].prod(1)
    assert torch.allclose(fourier_coefficients(f, x, subsets), expect(0.5, 0.0, 0.25))


class _Oracle(torch.nn.Module):
    """Logits from the true parity (the generalizing solution) or from a random function."""

    def __init__(self, subset, noise=False):
        super().__init__()
        self.subset, self.noise = subset, noise

    def forward(self, x):
        f = torch.randn(x.shape[0], generator=torch.Generator().manual_seed(0)) if self.noise \
            else x[:, self.subset].prod(1)
        return torch.stack([f, -f], dim=1)


def test_fourier_gap_is_near_one_for_the_parity_and_near_zero_for_noise():
    t = _task()
    assert t.measure_names == ("fourier_gap", "subset_weight_share")
    perfect = t.measures(_Oracle(t.meta["subset"]), torch.device("cpu"))["fourier_gap"]
    noise = t.measures(_Oracle(t.meta["subset"], noise=True), torch.device("cpu"))["fourier_gap"]
    assert perfect > 0.6 and abs(noise) < 0.25 and perfect > noise + 0.5


def test_subset_weight_share_starts_near_k_over_n_and_measures_keep_rng_and_mode():
    t = _task(n_bits=20, k=4, n_train=100, n_test=100)
    torch.manual_seed(0)
    model = build_model(validate(RunConfig(task=TaskConfig(kind="parity", options={"n_bits": 20}),
                                           model=ModelConfig(arch="mlp", n_layers=1, d_mlp=512))).model, t)
    model.train()
    rng = torch.get_rng_state()
    share = t.measures(model, torch.device("cpu"))["subset_weight_share"]
    assert abs(share - 4 / 20) < 0.03
    assert model.training and torch.equal(rng, torch.get_rng_state())
    with torch.no_grad():
        model.layers[0].W[[i for i in range(20) if i not in t.meta["subset"]]] = 0
    assert t.measures(model, torch.device("cpu"))["subset_weight_share"] == pytest.approx(1.0)


def test_no_gap_subsets_means_no_measures():
    t = _task(gap_subsets=0)
    assert t.measure_names == () and t.measures(None, torch.device("cpu")) == {} and t.measure_cost == 0


@pytest.mark.parametrize("options, message", [
    ({"n_bits": 1}, "task.options.n_bits: must be an integer in 2..62, got 1"),
    ({"k": 13}, "task.options.k: must be an integer in 1..n_bits (12), got 13"),
    ({"n_train": 1}, "task.options.n_train: must be >= 2 (and n_test >= 1), got 1 and 300"),
    ({"n_train": 2000, "n_test": 100}, "task.options.n_train: n_train + n_test must be at most half of the "
                                       "2^12 strings (2048), got 2100"),
    ({"gap_subsets": -1}, "task.options.gap_subsets: must be an integer >= 0, got -1"),
])
def test_bad_parity_options_are_one_line_naming_the_field(options, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        _task(**options)


def test_token_inputs_feed_the_transformer_and_keep_the_fourier_measure():
    t = _task(arch="transformer", inputs="tokens")
    x = t.splits["train"].inputs
    assert t.input_kind == "tokens" and t.input_shape == (13,) and t.vocab_size == 3
    assert set(x[:, :12].unique().tolist()) <= {0, 1} and bool((x[:, 12] == 2).all())
    S = t.meta["subset"]
    assert torch.equal(t.splits["train"].targets, (x[:, S].sum(1) % 2))  # odd number of 1-bits: class 1
    assert t.measure_names == ("fourier_gap",)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="transformer", n_layers=1, d_model=32, n_heads=4, d_mlp=64), t)
    assert model(x[:5]).shape == (5, 2)
    assert abs(t.measures(model, torch.device("cpu"))["fourier_gap"]) < 0.5
    message = "task.options.inputs: must be 'vector' or 'tokens', got 'bits'"
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        _task(inputs="bits")
