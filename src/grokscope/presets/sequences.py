"""Presets on generated sequence tasks: the synthetic-sentiment LSTM (Omnigrok's IMDb experiment) and
structural grokking on a generated grammar (Murty et al. 2023)."""

from __future__ import annotations

from grokscope.config import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.presets.registry import preset

SENTIMENT = {"n_words": 100, "n_train": 2000, "n_test": 2000, "noise": 0.0}


def _sentiment(name: str, alpha: float) -> RunConfig:
    return RunConfig(
        name=name,
        task=TaskConfig(kind="sentiment", options=dict(SENTIMENT)),
        model=ModelConfig(arch="lstm", n_layers=1, d_model=64, init_scale=alpha),
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=0.2, grad_clip=5.0, warmup_steps=0),
        # an evaluation (4,000 reviews) costs about 10 steps: every 250 steps, no budget cap
        train=TrainConfig(steps=20_000, batch_size=50, loss="ce", eval_every=250, eval_budget=0.0),
    )


@preset
def omnigrok_sentiment_lstm() -> RunConfig:
    """Liu, Michaud & Tegmark 2023 (Omnigrok), the IMDb LSTM on a generated stand-in: an LSTM whose
    every weight is multiplied by 6 at init memorizes its reviews with test accuracy near chance,
    then generalizes much later as weight decay shrinks the weight norm.

    MEASURED
    """
    return _sentiment("omnigrok_sentiment_lstm", 6.0)


@preset
def omnigrok_sentiment_control() -> RunConfig:
    """The alpha = 1 control of omnigrok_sentiment_lstm: the same LSTM, data and optimizer at the
    standard init scale; it generalizes as it fits, without a delay.

    MEASURED
    """
    return _sentiment("omnigrok_sentiment_control", 1.0)
