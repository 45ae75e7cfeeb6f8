"""Errors raised by grokscope."""


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the field: 'task.p: must be ...'."""
