"""Presets on sparse parity (Barak et al. 2022; Merrill, Tsilivis & Shukla 2023)."""

from __future__ import annotations

from grokscope.config import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.presets.expect import Expect
from grokscope.presets.registry import preset


@preset(expect=Expect(
    source="measured here: seeds 0-2, 1 thread (the docstring's numbers)",
    outcome=("grokking",), memorized=(300, 1000), generalized=(3000, 15_000), delay_ratio=(5, 40),
    final_acc=(0.98, 1.0), seconds=36))
def merrill2023_parity() -> RunConfig:
    """Merrill, Tsilivis & Shukla 2023: finite-sample sparse parity memorizes, then generalizes
    abruptly, with hidden progress before the jump.

    x in {-1, +1}^40, label = parity of 3 hidden bits, 1,000 distinct training strings, 5,000 fresh
    test strings; MLP 40-1000-2 ReLU, cross-entropy (the paper: hinge loss), SGD lr 0.1 without
    momentum, wd 0.01, batch 32, 20,000 steps (the paper: 300 epochs, ~9.4k steps). Evaluations
    every 100 steps without a budget cap (an evaluation costs about as much as a few 32-example steps).

    Measured here (1 thread, seeds 0 / 1 / 2; beside the test suite on the other core): train
    accuracy >= 0.99 at step 501 / 500 / 631 with test accuracy 0.50 / 0.51 / 0.50 (chance); test
    accuracy >= 0.99 at 6,200 / 9,100 / 8,400 (delay ratio 12.4 / 18.2 / 13.3, outcome class
    grokking), final 1.0. Hidden progress: the Fourier gap (final 0.96) crosses half its final value
    at 5,100 / 7,900 / 6,500, while test accuracy crosses 0.75 (half way from chance) at 5,200 /
    7,943 / 6,600; the share of first-layer weight on the 3 relevant inputs goes from 0.07 (3/40)
    to 0.96-1.0. 35-37 s of training each. With wd 0.003 the delay grows to 39-72x (mem ~490,
    generalized 18,900-36,200); with 600-700 training strings nothing generalizes in 40,000 steps.
    """
    return RunConfig(
        name="merrill2023_parity",
        task=TaskConfig(kind="parity", options={"n_bits": 40, "k": 3, "n_train": 1000, "n_test": 5000}),
        model=ModelConfig(arch="mlp", n_layers=1, d_mlp=1000, activation="relu"),
        optim=OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.01, warmup_steps=0),
        # evaluations are cheap next to 32-example steps: every 100 steps, no budget cap
        train=TrainConfig(steps=20_000, batch_size=32, loss="ce", eval_every=100, eval_budget=0.0),
    )
