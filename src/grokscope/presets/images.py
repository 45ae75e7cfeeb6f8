"""Presets on images: scikit-learn's 8x8 digits with an MLP and a CNN (Omnigrok's large
initialization; Humayun et al.'s delayed robustness)."""

from __future__ import annotations

from grokscope.config import ModelConfig, OptimConfig, RunConfig, TaskConfig, TrainConfig
from grokscope.presets.expect import Expect
from grokscope.presets.registry import preset

NO_MEASURES = {"robust_n": 0}


def _omnigrok(name: str, alpha: float, **options) -> RunConfig:
    return RunConfig(
        name=name,
        task=TaskConfig(kind="digits", options={"train_size": 300, **NO_MEASURES, **options}),
        model=ModelConfig(arch="mlp", n_layers=2, d_mlp=200, activation="relu", init_scale=alpha),
        optim=OptimConfig(name="adamw", lr=3e-3, betas=(0.9, 0.999), weight_decay=0.01, warmup_steps=0),
        train=TrainConfig(steps=60_000, batch_size=200, loss="mse", eval_every=250, eval_budget=0.04),
    )


@preset(expect=Expect(
    source="measured here: benchmarks/images.py --parts presets --seeds 3",
    outcome=("grokking",), memorized=(800, 5000), generalized=(20_000, 55_000), level=0.95,
    delay_ratio=(8, 40), final_acc=(0.93, 0.99), seconds=170))
def omnigrok_digits() -> RunConfig:
    """Liu, Michaud & Tegmark 2023 (Omnigrok), the MNIST experiment on scikit-learn's 8x8 digits: an
    MLP whose every parameter is multiplied by 6 after init memorizes its training images with test
    accuracy near chance, then generalizes much later as weight decay shrinks the weight norm.

    300 training digits (class-stratified; 1,497 test), MLP 64-200-200-10 ReLU, MSE on one-hot
    targets, init_scale 6 (grokscope's N(0, 1/fan_in) init, about 10x PyTorch's default scale of
    the paper's alpha), AdamW lr 3e-3, betas (0.9, 0.999), wd 0.01, batch 200, 60,000 steps. The
    paper: 1,000 MNIST images, 784-200-200-10, alpha 8, lr 1e-3, wd 0.01, 1e5 steps. On digits,
    1,000 images at alpha 6-8 memorize only after 1,000-3,500 steps with test accuracy already at
    0.26-0.54, so the delay ratio stays at ~3; 200-300 images memorize with test accuracy ~0.15.

    Measured here (benchmarks/images.py --parts presets --seeds 3, 1 thread, two runs side by side
    on 2 cores; seeds 0 / 1 / 2): train accuracy >= 0.99 at step 1,585 / 2,239 / 2,500 with test
    accuracy 0.15 / 0.14 / 0.15 there; test accuracy >= 0.9 at 28,500 / 31,250 / 29,000 and >= 0.95
    at 34,500 / 42,250 / 41,250: delay ratio (at 0.95) 21.8 / 18.9 / 16.5, outcome class grokking;
    final test accuracy 0.971 / 0.962 / 0.954 (omnigrok_digits_control: 0.969 / 0.957 / 0.963).
    The weight norm falls from 122 to ~34 (the control's final norm: 24). 146-176 s of training.
    Test accuracy 0.99 (the generalized_step of summary.json) is never reached on digits at this size.
    """
    return _omnigrok("omnigrok_digits", 6.0)


@preset(expect=Expect(
    source="measured here: benchmarks/images.py --parts presets --seeds 3",
    outcome=("comprehension",), memorized=(30, 300), generalized=(30, 300), level=0.95,
    delay_ratio=(0.5, 2), final_acc=(0.93, 0.99), seconds=190))
def omnigrok_digits_control() -> RunConfig:
    """omnigrok_digits at init_scale 1 (Omnigrok's alpha = 1 control): no delay.

    Measured here (benchmarks/images.py --parts presets --seeds 3, 1 thread; seeds 0 / 1 / 2): train
    and test accuracy cross 0.99 and 0.95 at the same evaluation (step 76 / 76 / 76; delay ratio 1.0,
    outcome class comprehension); final test accuracy 0.969 / 0.957 / 0.963; 190 s of training for
    seed 0 (the same 60,000 steps as omnigrok_digits). Its final weight norm (24.3 for seed 0) is
    the reference for `grokscope analyze RUN --reference CONTROL_RUN`.
    """
    return _omnigrok("omnigrok_digits_control", 1.0)


@preset(expect=Expect(
    source="measured here: benchmarks/images.py --parts humayun,cost, seeds 0-2",
    final_acc=(0.975, 1.0), metrics=(("test_pgd_acc", 0.35, 0.7),), seconds=100))
def humayun_digits() -> RunConfig:
    """Humayun, Balestriero & Baraniuk 2024 (Deep networks always grok), delayed robustness on digits:
    adversarial accuracy rises long after clean test accuracy has saturated, and the local complexity
    at training points descends, ascends, then descends again.

    1,000 training digits (797 test), MLP 64-200-200-10 ReLU, MSE on one-hot targets, every
    parameter x4 after init (init_scale 4), AdamW lr 3e-3, betas (0.9, 0.999), wd 0.05, batch 200,
    30,000 steps. Measures on 200 images per split: L∞ PGD (eps 0.1 in pixel units, 10 steps of
    0.025, random start) and FGSM at the same eps; local complexity with r = 0.1 and 10 directions.
    The paper's MNIST MLP uses init 1.0 (and GELU); at init 1 on digits (and with wd 0.01 or 0.1)
    test PGD accuracy stayed flat at 0.55-0.65 from step 175 to 30,000 and local complexity only rose:
    no delayed robustness, so this preset uses Omnigrok's larger init, where it appears.

    Measured here (benchmarks/images.py --parts humayun,cost, 1 thread, seeds 0 / 1 / 2): clean
    test accuracy saturated (within 0.01 of its best) at step 6,361 / 5,301 / 5,831 at 0.981 / 0.977
    / 0.981, where test PGD accuracy was 0.225 / 0.080 / 0.155; at step 30,000 it is 0.518 / 0.458
    / 0.532 (FGSM 0.415 -> 0.702, 0.265 -> 0.610, 0.375 -> 0.718) while clean accuracy ends at
    0.987 / 0.985 / 0.989. Local complexity at training points: 15.7 -> 12.6 (step 500) -> 20.5
    (step 14,840) -> 6.7, and the same descent -> ascent -> descent for seeds 1 and 2. 85-102 s of
    training each; evaluations with the measures take 8.2 of 97.7 s (8.4%).
    """
    return RunConfig(
        name="humayun_digits",
        task=TaskConfig(kind="digits", options={"train_size": 1000, "robust_n": 200, "pgd_eps": 0.1,
                                                "pgd_steps": 10, "lc_radius": 0.1, "lc_directions": 10}),
        model=ModelConfig(arch="mlp", n_layers=2, d_mlp=200, activation="relu", init_scale=4.0),
        optim=OptimConfig(name="adamw", lr=3e-3, betas=(0.9, 0.999), weight_decay=0.05, warmup_steps=0),
        train=TrainConfig(steps=30_000, batch_size=200, loss="mse", eval_every=500, eval_budget=0.1),
    )


@preset(expect=Expect(
    source="measured here: benchmarks/images.py --parts cnn --seeds 3",
    outcome=("grokking",), memorized=(300, 2000), generalized=(8000, 20_000), level=0.95,
    delay_ratio=(6, 60), final_acc=(0.93, 0.99), seconds=180))
def digits_cnn() -> RunConfig:
    """A CNN groks digits with large initialization too, but only its last 10-20 points are late:
    its convolutions generalize most of the way as soon as it fits.

    200 training digits (1,597 test), CNN conv 16 -> max-pool -> conv 32 -> max-pool (3x3, ReLU),
    one hidden layer of 64, MSE on one-hot targets, every parameter x3 after init (init_scale 3),
    AdamW lr 3e-3, betas (0.9, 0.999), wd 0.1, full batch (200), 20,000 steps.

    Measured here (benchmarks/images.py --parts cnn --seeds 3, 1 thread, two runs side by side;
    seeds 0 / 1 / 2): train accuracy >= 0.99 at step 600 / 1,000 / 559 with test accuracy 0.80 /
    0.85 / 0.76 there; test accuracy >= 0.9 at 8,200 / 3,548 / 4,400 and >= 0.95 at 18,200 / 14,600
    / 16,600 (delay ratio at 0.95 30.3 / 14.6 / 29.7, outcome class grokking), final 0.960 / 0.971 /
    0.951, as the weight norm falls from 29 to 12-14. The same CNN at init_scale 1 fits at step 68
    with test accuracy 0.95-0.96 (delay ratio 1-2, comprehension) and ends at 0.964 / 0.968 / 0.948.
    164-188 s of training.
    """
    return RunConfig(
        name="digits_cnn",
        task=TaskConfig(kind="digits", options={"train_size": 200, **NO_MEASURES}),
        model=ModelConfig(arch="cnn", cnn_channels=(16, 32), kernel_size=3, pool="max", n_layers=1, d_mlp=64,
                          activation="relu", init_scale=3.0),
        optim=OptimConfig(name="adamw", lr=3e-3, betas=(0.9, 0.999), weight_decay=0.1, warmup_steps=0),
        train=TrainConfig(steps=20_000, batch_size=200, loss="mse", eval_every=200, eval_budget=0.04),
    )
