"""Encoder handles: the trained encoder under evaluation and its twins (the baselines).

Every evaluation reports the trained encoder and up to two twins, built as training builds
its model (``torch.manual_seed(training seed)``, then the backbone) so that each is an exact
starting point:

* the **init twin**: the trained encoder's own ``ModelConfig``, init included. For an
  ``init=imagenet`` encoder this is the ImageNet backbone without SHAMISA training;
* the **random twin**: the same architecture with ``init=random``.

When the trained encoder was itself random-init the two coincide and only the random twin
is reported (labelled as both). Any architecture ``models.build_backbone`` knows works; the
backbone is wrapped in ``training.checkpoint.Encoder`` (x -> h = f/||f||).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shamisa_core.artifacts import ENCODER_FILE, find_file, resolve_artifacts
from shamisa_core.inference import InferenceOptions
from shamisa_core.models import ModelConfig, build_backbone
from shamisa_core.training.checkpoint import Encoder, load_encoder

from .cache import encoder_fingerprint

TRAINED = "trained"
INIT_TWIN = "init_twin"
RANDOM_TWIN = "random_twin"
TWIN_ROLES: tuple[str, ...] = (INIT_TWIN, RANDOM_TWIN)


@dataclass(frozen=True, eq=False)
class EncoderHandle:
    """An evaluation encoder (x -> h), its file meta, fingerprint and display label."""

    role: str
    module: torch.nn.Module
    meta: Mapping[str, Any]
    fingerprint: str
    source: str
    path: Path | None = None
    seed: int | None = None
    label: str = ""

    @property
    def patch_size(self) -> int | None:
        """The default evaluation crop of ``encoder.pt``: its ``eval_crop`` (``model.eval_crop``),
        else the training patch size."""
        value = self.meta.get("eval_crop") or self.meta.get("patch_size")
        return int(value) if value is not None else None

    @property
    def init(self) -> str | None:
        """``model_config.init`` of this encoder (``imagenet`` or ``random``)."""
        return (self.meta.get("model_config") or {}).get("init")

    @property
    def inference_tag(self) -> str:
        """The module's inference optimisations tag (part of every feature cache key)."""
        return str(getattr(self.module, "inference_tag", "") or "")

    @property
    def health(self) -> Mapping[str, Any] | None:
        """The training health check recorded in ``encoder.pt`` (None: unknown)."""
        value = self.meta.get("health")
        return value if isinstance(value, Mapping) else None

    def to_json(self) -> dict[str, Any]:
        """Summary: role, label, source, fingerprint, architecture, init, patch size, step, and
        the provenance a registered version is tagged with (profile, corpus hash, git commit)."""
        cfg = self.meta.get("model_config", {})
        return {"role": self.role, "label": self.label or self.role, "source": self.source,
                "fingerprint": self.fingerprint,
                "path": str(self.path) if self.path else None, "arch": cfg.get("arch"),
                "init": cfg.get("init"), "patch_size": self.patch_size,
                "step": self.meta.get("step"), "seed": self.seed,
                "profile": (self.meta.get("config") or {}).get("profile"),
                "corpus_hash": self.meta.get("corpus_hash"), "git_commit": self.meta.get("git_commit"),
                "inference_tag": self.inference_tag, "health": self.health}


def load_trained(encoder: str | os.PathLike, *, download_dir: str | Path | None = None,
                 tracking_uri: str | None = None, device: str = "cpu") -> EncoderHandle:
    """Load ``encoder.pt`` from a path, a folder holding it, or an MLflow URI
    (``models:/shamisa-encoder/3``, ``models:/shamisa-iqa@champion``, ``runs:/<id>/...``)."""
    location = resolve_artifacts(encoder, tracking_uri=tracking_uri, download_dir=download_dir)
    path = find_file(location, ENCODER_FILE).resolve()  # through models/latest -> run folder
    module, meta = load_encoder(path, device=device)
    return EncoderHandle(role=TRAINED, module=module, meta=meta,
                         fingerprint=encoder_fingerprint(module), source=str(encoder), path=path,
                         label="trained")


def training_seed(meta: Mapping[str, Any], default: int) -> int:
    """The seed the encoder was initialised with (``config.train.seed`` in ``encoder.pt``)."""
    train = (meta.get("config") or {}).get("train") or {}
    seed = train.get("seed") if isinstance(train, Mapping) else None
    return int(seed) if seed is not None else int(default)


def _twin(trained: EncoderHandle, cfg: ModelConfig, seed: int, role: str, label: str,
          device: str = "cpu") -> EncoderHandle:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        backbone = build_backbone(cfg)
    # the twins run on the trained encoder's inference path (BN folding, bf16), so that the
    # comparison is like for like and the cache keys carry the same inference tag
    options = getattr(trained.module, "options", None)
    module = (Encoder(backbone.eval(), options) if options is not None
              else Encoder(backbone)).to(device).eval()
    module.requires_grad_(False)
    meta = {k: v for k, v in trained.meta.items() if k in ("model_config", "patch_size", "arch",
                                                           "feature_dim", "format")}
    meta["model_config"] = dataclasses.asdict(cfg)
    return EncoderHandle(role=role, module=module, meta=meta,
                         fingerprint=encoder_fingerprint(module),
                         source=f"{role.replace('_', '-')}({cfg.arch}, init={cfg.init}, seed={seed})",
                         seed=int(seed), label=label)


def _config_of(trained: EncoderHandle) -> ModelConfig:
    cfg = ModelConfig(**trained.meta["model_config"])
    if cfg.weights_path and not Path(cfg.weights_path).is_file():
        cfg = dataclasses.replace(cfg, weights_path=None)  # the packaged weights, same file
    return cfg


def random_twin(trained: EncoderHandle, seed: int, device: str = "cpu") -> EncoderHandle:
    """The same architecture, ``init=random``, initialised with ``seed`` (the training seed).

    The global torch RNG is forked, never changed.
    """
    cfg = dataclasses.replace(_config_of(trained), init="random", weights_path=None)
    label = "random twin (= init twin)" if trained.init == "random" else "random twin"
    return _twin(trained, cfg, seed, RANDOM_TWIN, label, device)


def init_twin(trained: EncoderHandle, seed: int, device: str = "cpu") -> EncoderHandle:
    """The trained encoder's own ``ModelConfig`` (init included), built with ``seed``: the
    exact backbone training started from (ImageNet weights for ``init=imagenet``)."""
    cfg = _config_of(trained)
    return _twin(trained, cfg, seed, INIT_TWIN, f"init twin ({cfg.init})", device)


def make_twins(trained: EncoderHandle, seed: int, device: str = "cpu") -> list[EncoderHandle]:
    """The baselines of ``trained``: ``[init twin, random twin]``, or only the random twin
    when the trained encoder was random-init (the two would be the same network)."""
    twins = [random_twin(trained, seed, device)]
    if trained.init != "random":
        twins.insert(0, init_twin(trained, seed, device))
    return twins


def untrained_twin(trained: EncoderHandle, seed: int) -> EncoderHandle:
    """The random twin (the baseline before init twins existed); kept for callers."""
    return random_twin(trained, seed)
