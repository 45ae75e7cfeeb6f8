"""Synthetic sentiment (a generated stand-in for Omnigrok's IMDb experiment; no corpus is downloaded):
a vocabulary whose words carry hidden polarities (+1, -1 or 0), reviews of random length drawn
uniformly from it, and the label 'positive' when the polarity sum plus Gaussian noise is > 0.

    grokscope train --task.kind sentiment --model.arch lstm --model.init_scale 6

Everything is drawn with the split seed: the polarities, the reviews, the noise. Reviews are
token sequences left-padded with the pad token (id n_words) to max_len, so the answer is read at
the last position. Splits: `train` (n_train reviews) and `test` (n_test fresh reviews); the
meta records the positive and negative words and the Bayes accuracy of the noisy labels on the test split
(the share whose label agrees with the sign of the noiseless sum), the best a model can do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from grokscope.errors import ConfigError
from grokscope.tasks.task import Split, Task, check_generated

__all__ = ["SentimentOptions", "build_sentiment", "validate_sentiment"]


@dataclass(frozen=True)
class SentimentOptions:
    n_words: int = 200
    """Vocabulary size (the pad token is one more)."""
    polar_fraction: float = 0.3
    """Share of the words with a polarity (half positive, half negative); the rest are neutral."""
    min_len: int = 8
    """Shortest review (words)."""
    max_len: int = 24
    """Longest review (words); sequences are padded to this length."""
    n_train: int = 750
    """Training reviews (Omnigrok's IMDb run: 750)."""
    n_test: int = 2000
    """Test reviews."""
    noise: float = 0.5
    """Standard deviation of the Gaussian noise added to the polarity sum before its sign is taken."""


def _opts(cfg) -> SentimentOptions:
    return SentimentOptions(**cfg.task.options)


def validate_sentiment(cfg) -> None:
    o = _opts(cfg)
    check_generated(cfg, o.n_train, o.n_test, " (its labels' noise is task.options.noise)")
    if o.n_words < 2:
        raise ConfigError(f"task.options.n_words: must be an integer >= 2, got {o.n_words!r}")
    if not (0 < o.polar_fraction <= 1 and round(o.polar_fraction * o.n_words / 2) >= 1):
        raise ConfigError(f"task.options.polar_fraction: must be in (0, 1] and give at least one positive "
                          f"and one negative word, got {o.polar_fraction!r}")
    if not 1 <= o.min_len <= o.max_len:
        raise ConfigError(f"task.options.min_len: must be >= 1 and <= max_len ({o.max_len}), "
                          f"got {o.min_len!r}")
    if not (math.isfinite(o.noise) and o.noise >= 0):
        raise ConfigError(f"task.options.noise: must be a number >= 0, got {o.noise!r}")


def build_sentiment(cfg) -> Task:
    """Reviews and labels from the hidden polarities (see the module docstring)."""
    o = _opts(cfg)
    g = torch.Generator().manual_seed(cfg.effective_split_seed)
    n_polar = round(o.polar_fraction * o.n_words / 2)
    words = torch.randperm(o.n_words, generator=g)
    polarity = torch.zeros(o.n_words + 1)  # the pad token (id n_words) is neutral
    polarity[words[:n_polar]] = 1.0
    polarity[words[n_polar:2 * n_polar]] = -1.0
    m = o.n_train + o.n_test
    lengths = torch.randint(o.min_len, o.max_len + 1, (m,), generator=g)
    tokens = torch.randint(0, o.n_words, (m, o.max_len), generator=g)
    pad = torch.arange(o.max_len).unsqueeze(0) < (o.max_len - lengths).unsqueeze(1)  # left padding
    tokens[pad] = o.n_words
    score = polarity[tokens].sum(1)  # (m,)
    noisy = score + o.noise * torch.randn(m, generator=g)
    labels = (noisy > 0).long()
    clean = (score > 0).long()
    test = slice(o.n_train, m)
    bayes = float((labels[test] == clean[test]).double().mean())
    meta = {"kind": "sentiment", "n_words": o.n_words, "positive_words": sorted(words[:n_polar].tolist()),
            "negative_words": sorted(words[n_polar:2 * n_polar].tolist()),
            "n_train": o.n_train, "n_test": o.n_test, "noise": o.noise, "test_label_agreement": bayes}
    splits = {"train": Split(tokens[: o.n_train], labels[: o.n_train]),
              "test": Split(tokens[test], labels[test])}
    return Task(kind="sentiment", splits=splits, input_kind="tokens", input_shape=(o.max_len,), n_classes=2,
                vocab_size=o.n_words + 1, answer_position=-1, meta=meta)
