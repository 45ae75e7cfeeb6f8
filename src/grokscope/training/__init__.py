"""Training: the loop (train, resume) and drop-in pieces for any PyTorch loop.

    from grokscope.training import GrokfastEMA, GrokfastMA, OrthoGrad, stablemax_cross_entropy
"""

from grokscope.training.filters import GrokfastEMA, GrokfastMA
from grokscope.training.losses import softmax_collapse_fraction, stablemax, stablemax_cross_entropy
from grokscope.training.orthograd import OrthoGrad, orthogonalize_

__all__ = ["GrokfastEMA", "GrokfastMA", "OrthoGrad", "orthogonalize_", "softmax_collapse_fraction",
           "stablemax", "stablemax_cross_entropy"]
