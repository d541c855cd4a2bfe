"""Shared by the quality benches: train a profile variant, then score it and its twins on the proxy.

The crops of the proxy (5 crops x 2 scales per image, METHOD.md §7.3) are cut once and kept in
memory, so each encoder costs only its forward passes; the protocol itself is the project's
(`evaluate_standard`: 10 reference-disjoint splits, alpha by median validation SRCC). Every
result keeps the per-split test SRCC/PLCC, so spreads over splits and over seeds can be given.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shamisa_core.evaluation import features as feat  # noqa: E402
from shamisa_core.evaluation.protocol import evaluate_standard  # noqa: E402
from shamisa_core.evaluation.proxy import ProxySpec, build_proxy  # noqa: E402
from shamisa_core.evaluation.splits import make_splits  # noqa: E402
from shamisa_core.inference import InferenceOptions  # noqa: E402
from shamisa_core.models import ModelConfig, build_backbone  # noqa: E402
from shamisa_core.training.checkpoint import Encoder, load_encoder  # noqa: E402


def load_proxy_dataset(folder: Path, spec: ProxySpec):  # noqa: ANN201
    """Build (or reuse) the proxy in ``folder`` and load it as a dataset."""
    build_proxy(folder, spec)
    try:
        from shamisa_core.evaluation.benchmark import load_proxy
    except ImportError:  # after the evaluation split
        from shamisa_core.evaluation.prepared import load_proxy  # type: ignore
    return load_proxy(folder)


class ProxyCrops:
    """All crops of a loaded proxy, cut once: uint8 (n_images, 10, P, P, 3)."""

    def __init__(self, dataset: Any, crop: int) -> None:
        from PIL import Image

        self.dataset = dataset
        self.crop = crop
        table = dataset.table
        out = np.empty((len(table), 10, crop, crop, 3), dtype=np.uint8)
        for i, path in enumerate(table["image"]):
            with Image.open(path) as im:
                full, half = feat.image_crops(im.convert("RGB"), crop)
            out[i, :5], out[i, 5:] = full, half
        self.crops = out
        self.splits = make_splits(table, dataset.info, dataset_version=dataset.version)

    def features(self, encoder: torch.nn.Module, batch: int = 64) -> np.ndarray:
        """(n_images, 5, 2d): concat(h(full crop k), h(half crop k)), as the protocol's."""
        flat = self.crops.reshape(-1, self.crop, self.crop, 3)
        hs = []
        with torch.inference_mode():
            for s in range(0, len(flat), batch):
                hs.append(encoder(feat.normalise(flat[s:s + batch])).double().numpy())
        h = np.concatenate(hs).reshape(len(self.crops), 10, -1)
        return np.concatenate([h[:, :5], h[:, 5:]], axis=2)

    def score(self, encoder: torch.nn.Module) -> dict[str, Any]:
        """Standard protocol on the proxy: medians and the per-split test SRCC/PLCC."""
        t0 = time.perf_counter()
        f = self.features(encoder)
        t1 = time.perf_counter()
        r = evaluate_standard(f, self.dataset.table, self.dataset.info, self.splits, per_type=True)
        return {
            "srcc": r.srcc, "plcc": r.plcc, "alpha": r.alpha,
            "split_srcc": [s.metrics.srcc for s in r.splits],
            "split_plcc": [s.metrics.plcc for s in r.splits],
            "per_type_srcc": {k: v.get("srcc") for k, v in r.per_type.items()},
            "encode_s": round(t1 - t0, 1), "crops_per_s": round(self.crops.shape[0] * 10 / (t1 - t0), 1),
        }


def twin(model_cfg: dict[str, Any], seed: int, init: str | None = None,
         options: InferenceOptions | None = InferenceOptions()) -> Encoder:
    """The untrained twin: the trained encoder's model config (``init`` overridden), ``seed``."""
    cfg = ModelConfig(**model_cfg)
    if init is not None:
        cfg = dataclasses.replace(cfg, init=init, weights_path=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        backbone = build_backbone(cfg)
    return Encoder(backbone.eval(), options).eval()


def trained(path: Path, options: InferenceOptions | None = InferenceOptions()) -> tuple[Encoder, dict]:
    """The trained encoder of ``encoder.pt`` on the given inference path."""
    return load_encoder(path, options=options)


def summarise(values: list[float]) -> dict[str, float]:
    """mean, std (ddof=1 when n > 1), min, max."""
    a = np.asarray(values, dtype=float)
    return {"mean": round(float(a.mean()), 4), "std": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 4),
            "min": round(float(a.min()), 4), "max": round(float(a.max()), 4), "n": int(len(a))}
