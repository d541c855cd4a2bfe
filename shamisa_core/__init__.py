"""SHAMISA core library: distortion engine, corpus I/O, graphs, losses, models, training and
evaluation. Never imports Dagster (see ``shared/spec/ARCHITECTURE.md``)."""

__version__ = "0.1.0"
