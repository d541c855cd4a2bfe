"""Re-export: :class:`TrainConfig` lives with the rest of the configuration, in
:mod:`shamisa_core.config.train`."""

from shamisa_core.config.train import Amp, Device, TrainConfig  # noqa: F401
