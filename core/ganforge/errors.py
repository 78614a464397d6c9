"""The errors ganforge reports to a user.

Every error a user can cause (a bad config, a missing dataset, a corrupt checkpoint, an unwritable
directory) is a :class:`GanforgeError`. The CLI prints its message as one paragraph, without a
traceback, and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GanforgeError(Exception):
    """An error caused by the user's input; its message says what was wrong and what was expected."""


class ConfigError(GanforgeError):
    """A config value is unknown, of the wrong type or out of range."""


class UnknownComponentError(ConfigError):
    """A config names a component that no loaded plugin registered."""


class PluginError(GanforgeError):
    """A plugin could not be loaded, or two plugins registered the same name."""


class DataError(GanforgeError):
    """A dataset could not be read."""


class CheckpointError(GanforgeError):
    """A checkpoint is missing, corrupt, unsafe or of another architecture."""


class OutputError(GanforgeError):
    """An output location cannot be written, or writing would destroy earlier results."""
