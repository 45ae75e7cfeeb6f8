"""Named, verified starting points, grouped by domain. Each preset's docstring gives its source,
its settings and the numbers measured with it."""

from grokscope.presets import algorithmic, images, parity, reasoning, rl, sequences  # noqa: F401  (registers the presets)
from grokscope.presets.registry import get_preset, list_presets

__all__ = ["get_preset", "list_presets"]
