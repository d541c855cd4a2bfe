"""Encoder pre-training (METHOD.md §4.1, §6; DECISIONS.md 10-12): config, loop, checkpoints,
DDP helpers and the ``shamisa train`` command.

Names are imported lazily (PEP 562) so that importing one submodule (e.g. ``checkpoint``
to load an encoder) does not pull in the loop and the corpus reader. ``TrainConfig`` lives
in :mod:`shamisa_core.config.train` and is re-exported here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Encoder": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_encoder": "checkpoint",
    "save_checkpoint": "checkpoint",
    "save_encoder": "checkpoint",
    "TrainConfig": "config",
    "NonFiniteLossError": "loop",
    "TrainResult": "loop",
    "effective_rank": "loop",
    "train": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
