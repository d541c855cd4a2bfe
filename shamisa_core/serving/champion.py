"""The champion rule, as pure functions (no MLflow): may a new model version take the alias?

The ``champion`` alias of ``shamisa-iqa`` moves to a new version only when

* the new encoder's training health check did not fail (``encoder.pt`` metadata
  ``"health": {"passed": bool, ...}``; a missing ``health`` is unknown and allowed), and
* its mean SRCC is strictly higher than the champion's over the datasets both were scored
  on: same name and, where **both** record it, the same dataset version. A dataset version
  missing on either side is not a mismatch (it cannot be compared, so it is trusted).

Without a common dataset the alias does not move.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

CHAMPION_ALIAS = "champion"
SRCC_TAG = "srcc/"
VERSION_TAG = "dataset_version/"

Scores = Mapping[str, tuple[float, str | None]]


@dataclass(frozen=True)
class ChampionDecision:
    """Whether the ``champion`` alias moved to ``new_version``, and why."""

    moved: bool
    reason: str
    new_version: str | None
    old_version: str | None
    new_mean: float | None
    old_mean: float | None
    datasets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        return {**asdict(self), "datasets": list(self.datasets)}

    def markdown(self) -> str:
        """A short markdown table for Dagster metadata."""
        def num(v: float | None) -> str:
            return "-" if v is None else f"{v:.4f}"

        return ("| field | value |\n|---|---|\n"
                f"| moved | {'yes' if self.moved else 'no'} |\n"
                f"| new version | {self.new_version or '-'} |\n"
                f"| champion before | {self.old_version or '-'} |\n"
                f"| new mean SRCC | {num(self.new_mean)} |\n"
                f"| champion mean SRCC | {num(self.old_mean)} |\n"
                f"| compared on | {', '.join(self.datasets) or '-'} |\n"
                f"| reason | {self.reason} |")


def finite(v: Any) -> bool:
    """A real, finite number."""
    return (v is not None and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _blank(version: str | None) -> bool:
    return version is None or str(version).strip().lower() in ("", "none", "null", "nan")


def version_scores(tags: Mapping[str, str]) -> dict[str, tuple[float, str | None]]:
    """``{dataset: (SRCC, dataset version or None)}`` from a model version's tags."""
    out: dict[str, tuple[float, str | None]] = {}
    for key, value in tags.items():
        if key.startswith(SRCC_TAG):
            name = key[len(SRCC_TAG):]
            try:
                v = float(value)
            except ValueError:
                continue
            if math.isfinite(v):
                version = tags.get(VERSION_TAG + name)
                out[name] = (v, None if _blank(version) else version)
    return out


def health_blocks(health: Mapping[str, Any] | None) -> str | None:
    """Why a health record forbids promotion (None: passed or unknown)."""
    if not isinstance(health, Mapping) or "passed" not in health:
        return None
    if bool(health.get("passed")):
        return None
    detail = health.get("reasons") or health.get("reason") or health.get("failed")
    if isinstance(detail, (list, tuple)):
        detail = "; ".join(map(str, detail))
    return "the encoder's training health check failed" + (f" ({detail})" if detail else "")


def decide_champion(new: Scores, champion: Scores | None, *, new_version: str | None,
                    old_version: str | None,
                    health: Mapping[str, Any] | None = None) -> ChampionDecision:
    """The champion rule (module docstring)."""
    mean_new = sum(v for v, _ in new.values()) / len(new) if new else None
    blocked = health_blocks(health)
    if blocked:
        stay = f"{CHAMPION_ALIAS} stays v{old_version}" if old_version else f"no {CHAMPION_ALIAS} is set"
        return ChampionDecision(False, f"{blocked}: version {new_version} is not promoted; {stay}",
                                new_version, old_version, mean_new, None, ())
    if champion is None or old_version is None:
        return ChampionDecision(True, f"no {CHAMPION_ALIAS} yet: version {new_version} becomes "
                                f"{CHAMPION_ALIAS}", new_version, None, mean_new, None,
                                tuple(sorted(new)))
    common, mismatched = [], []
    for name in sorted(set(new) & set(champion)):
        nv, cv = new[name][1], champion[name][1]
        (common if _blank(nv) or _blank(cv) or nv == cv else mismatched).append(name)
    if not common:
        why = (f"no dataset in common with {CHAMPION_ALIAS} v{old_version} "
               f"(new: {', '.join(sorted(new)) or 'none'}; {CHAMPION_ALIAS}: "
               f"{', '.join(sorted(champion)) or 'none'}")
        if mismatched:
            why += f"; other dataset versions: {', '.join(mismatched)}"
        return ChampionDecision(False, why + f"); {CHAMPION_ALIAS} stays v{old_version}",
                                new_version, old_version, None, None, ())
    new_mean = sum(new[n][0] for n in common) / len(common)
    old_mean = sum(champion[n][0] for n in common) / len(common)
    names = ", ".join(common)
    if new_mean > old_mean:
        reason = (f"mean SRCC {new_mean:.4f} > {old_mean:.4f} of v{old_version} on {names}: "
                  f"{CHAMPION_ALIAS} moves to v{new_version}")
    else:
        reason = (f"mean SRCC {new_mean:.4f} does not beat {old_mean:.4f} of v{old_version} on "
                  f"{names}: {CHAMPION_ALIAS} stays v{old_version}")
    if mismatched:
        reason += f" (not compared, dataset version differs: {', '.join(mismatched)})"
    return ChampionDecision(new_mean > old_mean, reason, new_version, old_version,
                            new_mean, old_mean, tuple(common))
