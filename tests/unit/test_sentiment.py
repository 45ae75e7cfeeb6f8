"""Synthetic sentiment: hidden polarities, labels from the polarity sum, padding, seeds; the LSTM
and the transformer both train on it through the same engine."""

from __future__ import annotations

import re

import pytest
import torch

from grokscope import RunConfig, TaskConfig, train
from grokscope.config import LogConfig, ModelConfig, OptimConfig, TrainConfig, validate
from grokscope.errors import ConfigError
from grokscope.tasks import task_from_config


def _cfg(seed=0, **options):
    opts = {"n_words": 30, "n_train": 120, "n_test": 200, **options}
    return validate(RunConfig(seed=seed, task=TaskConfig(kind="sentiment", options=opts),
                              model=ModelConfig(arch="lstm", n_layers=1, d_model=16)))


def test_noiseless_labels_are_the_sign_of_the_hidden_polarity_sum_and_padding_is_on_the_left():
    t = task_from_config(_cfg(noise=0.0, min_len=3, max_len=9))
    pad = t.vocab_size - 1
    x = torch.cat([t.splits["train"].inputs, t.splits["test"].inputs])
    y = torch.cat([t.splits["train"].targets, t.splits["test"].targets])
    assert t.input_kind == "tokens" and x.shape[1] == 9 and t.answer_position == -1
    lengths = (x != pad).sum(1)
    assert int(lengths.min()) >= 3 and int(lengths.max()) <= 9
    for row, n in zip(x, lengths.tolist()):  # pads first, then the words
        assert bool((row[: 9 - n] == pad).all()) and bool((row[9 - n:] != pad).all())
    pos, neg = t.meta["positive_words"], t.meta["negative_words"]
    assert len(pos) == len(neg) == 4 and not set(pos) & set(neg)  # round(0.3 * 30 / 2) each
    polarity = torch.zeros(t.vocab_size)
    polarity[pos], polarity[neg] = 1.0, -1.0
    assert torch.equal(y, (polarity[x].sum(1) > 0).long())
    assert t.meta["test_label_agreement"] == 1.0


def test_noise_flips_some_labels_and_everything_is_fixed_by_the_seed():
    a, b, c = (task_from_config(_cfg(seed=s, noise=1.0)) for s in (1, 1, 2))
    assert torch.equal(a.splits["train"].inputs, b.splits["train"].inputs) and a.meta == b.meta
    assert not torch.equal(a.splits["train"].inputs, c.splits["train"].inputs)
    assert 0.5 < a.meta["test_label_agreement"] < 1.0


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_lstm_and_transformer_train_on_the_same_sequence_task(arch, tmp_path):
    cfg = _cfg()
    model = ModelConfig(arch=arch, n_layers=1, d_model=16, n_heads=2, d_mlp=32, norm="pre")
    cfg = RunConfig(task=cfg.task, model=model, optim=OptimConfig(lr=1e-2, weight_decay=0.0),
                    train=TrainConfig(steps=60, batch_size=40, eval_every=20),
                    log=LogConfig(figure=False, report=False, progress=False))
    r = train(cfg, tmp_path / arch)
    assert r.summary["status"] == "completed" and r.metrics[-1]["step"] == 60
    assert r.metrics[-1]["train_loss"] < r.metrics[0]["train_loss"]


@pytest.mark.parametrize("options, message", [
    ({"n_words": 1}, "task.options.n_words: must be an integer >= 2, got 1"),
    ({"min_len": 10, "max_len": 5}, "task.options.min_len: must be >= 1 and <= max_len (5), got 10"),
    ({"noise": -1.0}, "task.options.noise: must be a number >= 0, got -1.0"),
    ({"polar_fraction": 0.01}, "task.options.polar_fraction: must be in (0, 1] and give at least one "
                               "positive and one negative word, got 0.01"),
])
def test_bad_sentiment_options_are_one_line_naming_the_field(options, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        _cfg(**options)
