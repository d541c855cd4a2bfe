"""Code versions that make Dagster's staleness ("unsynced") follow the configuration.

Dagster marks an asset stale when its ``code_version`` differs from the one recorded at its
last materialization, or when an input's data version changed since. Settings come from the
environment (``SHAMISA_PROFILE``, ``SHAMISA_OVERRIDES``, ``SHAMISA_PRISTINE``,
``SHAMISA_WORLD_SIZE`` and the evaluation variables of ``pipelines.eval_resources``), read when
the code location loads. So each asset's code version is ``<code revision>+<hash>`` where the
hash covers the settings the asset's output depends on, *including its ancestors' settings*:
changing the corpus seed changes the versions of ``corpus_shards`` and of everything downstream
in one step, so "Materialize unsynced" re-runs the whole affected chain at once, and nothing
upstream of the change moves. Changing only evaluation settings leaves the corpus and the
encoder fresh.

Data versions are content hashes returned by the assets themselves (pristine manifest, shard
sha256, manifest hash, ``encoder.pt`` sha256, dataset/splits/feature versions).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from pipelines.resources import env_overrides, env_profile
from shamisa_core.config import load_profile

def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _cfg():
    """The configuration ``ShamisaSettings`` resolves from the same environment."""
    pristine = os.environ.get("SHAMISA_PRISTINE", "default")
    return load_profile(env_profile(), [*env_overrides(), f"corpus.pristine={pristine}"])


def settings_payloads() -> dict[str, Any]:
    """The settings each stage depends on (ancestors included), as plain JSON values."""
    cfg = _cfg().to_dict()
    pristine = {"pristine": cfg["corpus"]["pristine"], "min_side": cfg["corpus"]["min_side"],
                "profile": cfg["profile"]}
    corpus = {"profile": cfg["profile"], **{k: cfg[k] for k in ("engine", "group", "corpus")}}
    training = {"config": cfg, "world_size": int(os.environ.get("SHAMISA_WORLD_SIZE", "1") or 1)}
    from pipelines.eval_resources import eval_resources

    ev = eval_resources()["evaluation"].model_dump()
    benchmark = {k: ev.get(k) for k in ("proxy_refs", "proxy_types", "proxy_levels", "seed")}
    features = {"benchmark": benchmark, "training": training,
                **{k: ev.get(k) for k in ("encoder", "crop_size")}}
    results = {"features": features, "evaluation": ev}
    return {"pristine": pristine, "corpus": corpus, "training": training,
            "benchmark": benchmark, "features": features, "results": results}


def code_version(stage: str, revision: str) -> str:
    """``<revision>+<hash of the settings of stage>`` (a key of :func:`settings_payloads`).

    ``revision`` is the asset's own code revision: bump it where the asset is defined when its
    code changes the output for the same settings.
    """
    return f"{revision}+{_digest(settings_payloads()[stage])}"
