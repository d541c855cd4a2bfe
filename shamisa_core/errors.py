"""The project's own error types: the ``shamisa`` CLI maps these to exit status 2 and one line.

Every library error that a user can cause (a damaged file, a wrong path, a folder that holds
an earlier run) is a :class:`ShamisaError` whose message names the file and says how to fix
it. Existing error classes of other modules (``ShardError``, ``PristineError``, ...) are
mapped by the CLI too; new ones should subclass :class:`ShamisaError`.
"""

from __future__ import annotations

from pathlib import Path


class ShamisaError(Exception):
    """Base of the project's user-facing errors (message names the file and the fix)."""


class ImageReadError(ShamisaError, ValueError):
    """An image file that cannot be read as RGB (missing, empty, truncated, not an image,
    or a pixel format with no defined conversion). ``path`` is the file, ``reason`` why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class CheckpointError(ShamisaError, ValueError):
    """A checkpoint/encoder file that exists but cannot be loaded (truncated, garbage, foreign)."""

    def __init__(self, path: str | Path, reason: str, fix: str):
        self.path = str(path)
        super().__init__(f"cannot load {self.path}: {reason}. {fix}")


class RunFolderError(ShamisaError, ValueError):
    """An output folder that cannot be used as asked (holds an earlier run, is a file, ...)."""


class CorpusIntegrityError(ShamisaError, ValueError):
    """Shards that do not match their corpus manifest (missing, truncated, swapped)."""


class OutputPathError(ShamisaError, ValueError):
    """An output path that cannot be written (an existing file where a folder is needed, ...)."""
