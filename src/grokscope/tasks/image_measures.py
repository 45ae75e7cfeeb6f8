"""The image tasks' own measures: adversarial accuracy (L∞ PGD and FGSM) and local complexity.

Measured on the eval schedule, per split, on a fixed seeded subset of `robust_n` images (the same
images, random starts and polytope directions at every evaluation, so the curves show the model
changing, not the sample), with their compute counted in the evaluation budget
(`Task.measure_cost`). Logged as `{split}_pgd_acc`, `{split}_fgsm_acc`, `{split}_lc` for every
split and `random_lc` at uniform random points of the pixel box. See
`grokscope.models.robustness` for the definitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from grokscope.errors import ConfigError
from grokscope.models.robustness import fgsm_accuracy, local_complexity, pgd_accuracy
from grokscope.tasks.task import Task

__all__ = ["ImageTask", "RobustnessOptions", "check_robustness_options", "robustness_of"]

MEASURE_SEED = 20240223  # fixed: the measured subset and its randomness never change within a run


@dataclass(frozen=True)
class RobustnessOptions:
    """The image measures' settings (task.options of the image task kinds)."""

    robust_n: int = 200
    """Images per split for the robustness and local-complexity measures (a fixed seeded subset);
    0 turns the measures off."""
    pgd_eps: float = 0.1
    """L∞ radius of the PGD and FGSM attacks, in pixel units (images are in [0, 1])."""
    pgd_steps: int = 10
    """PGD steps (random start, then signed-gradient steps projected on the ball and the pixel box)."""
    pgd_step_size: float = 0.0
    """PGD step in pixel units; 0 uses pgd_eps / 4."""
    lc_radius: float = 0.1
    """Local complexity: radius r of the cross-polytope x ± r·v_p around each point (pixel units)."""
    lc_directions: int = 25
    """Local complexity: P orthonormal directions per point (2P vertices); at most the pixel count."""


ROBUSTNESS_FIELDS = tuple(RobustnessOptions.__dataclass_fields__)


def robustness_of(options: dict) -> RobustnessOptions:
    """The RobustnessOptions in a task.options dict (other keys ignored; defaults filled in)."""
    return RobustnessOptions(**{k: v for k, v in options.items() if k in ROBUSTNESS_FIELDS})


def check_robustness_options(options: dict, n_pixels: int) -> None:
    """ConfigError naming the first bad robustness option."""
    o = robustness_of(options)
    checks = [("robust_n", o.robust_n >= 0, "an integer >= 0"),
              ("pgd_eps", math.isfinite(o.pgd_eps) and o.pgd_eps >= 0, "a number >= 0"),
              ("pgd_steps", o.pgd_steps >= 0, "an integer >= 0"),
              ("pgd_step_size", math.isfinite(o.pgd_step_size) and o.pgd_step_size >= 0, "a number >= 0"),
              ("lc_radius", math.isfinite(o.lc_radius) and o.lc_radius > 0, "a number > 0"),
              ("lc_directions", 1 <= o.lc_directions <= n_pixels,
               f"an integer in 1..{n_pixels} (the pixels)")]
    for name, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"task.options.{name}: must be {allowed}, got {getattr(o, name)!r}")


def measure_names(splits, o: RobustnessOptions) -> tuple[str, ...]:
    if o.robust_n == 0:
        return ()
    per = [f"{s}_{m}" for m in ("pgd_acc", "fgsm_acc") for s in splits]
    return (*per, *(f"{s}_lc" for s in splits), "random_lc")


@dataclass(frozen=True, eq=False, kw_only=True)
class ImageTask(Task):
    """A Task of images whose `measures` are adversarial accuracy and local complexity."""

    robustness: RobustnessOptions = field(default_factory=RobustnessOptions)
    box: tuple[float, float] = (0.0, 1.0)
    """The pixel range: attacks and random points stay inside it."""

    def _subset(self, name: str) -> torch.Tensor:
        """The measured rows of split `name`: the first robust_n of a fixed permutation."""
        n = len(self.splits[name])
        g = torch.Generator().manual_seed(MEASURE_SEED + sum(map(ord, name)))
        return torch.randperm(n, generator=g)[: self.robustness.robust_n]

    @property
    def measure_cost(self) -> float:
        """One evaluation of the measures in forward passes of single examples: a PGD step is a
        forward and a backward (~3 forwards) plus a forward to check it, FGSM the same once, local
        complexity 2P forwards per point (train, every split and the random points)."""
        o = self.robustness
        if o.robust_n == 0:
            return 0.0
        rows = sum(min(o.robust_n, len(s)) for s in self.splits.values())
        return rows * (4 * o.pgd_steps + 1 + 4 + 2 * o.lc_directions) + o.robust_n * 2 * o.lc_directions

    def measures(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        o = self.robustness
        if o.robust_n == 0:
            return {}
        step = o.pgd_step_size or o.pgd_eps / 4
        out: dict[str, float] = {}
        lc: dict[str, float] = {}
        for name, split in self.splits.items():
            idx = self._subset(name)
            x, y = split.inputs[idx].to(device), split.targets[idx].to(device)
            g = torch.Generator().manual_seed(MEASURE_SEED + 1)
            out[f"{name}_pgd_acc"] = pgd_accuracy(model, x, y, eps=o.pgd_eps, steps=o.pgd_steps,
                                                  step_size=step, box=self.box, generator=g)
            out[f"{name}_fgsm_acc"] = fgsm_accuracy(model, x, y, eps=o.pgd_eps, box=self.box)
            g = torch.Generator().manual_seed(MEASURE_SEED + 2)
            lc[f"{name}_lc"] = float(local_complexity(model, x, radius=o.lc_radius,
                                                      directions=o.lc_directions, generator=g).mean())
        g = torch.Generator().manual_seed(MEASURE_SEED + 3)
        lo, hi = self.box
        points = lo + (hi - lo) * torch.rand((o.robust_n, *self.input_shape), generator=g)
        lc["random_lc"] = float(local_complexity(model, points.to(device), radius=o.lc_radius,
                                                 directions=o.lc_directions, generator=g).mean())
        return {**out, **lc}


def image_task(options: dict, **fields) -> ImageTask:
    """An ImageTask with its robustness settings from task.options and its measure names."""
    o = robustness_of(options)
    return ImageTask(robustness=o, measure_names=measure_names(fields["splits"], o), **fields)
