"""Report tables of an evaluation result: the trained encoder against its twins.

A result (``stages.SCHEMA``) holds the trained encoder's entries per dataset, ``twins`` ->
``{role: the same entries}`` for ``init_twin`` / ``random_twin``, and ``meta`` (with each
encoder's display label). Every table here is built from DataFrames; ``markdown_table`` is
the one markdown writer (Dagster metadata, the ``.md`` files).

The cross-dataset matrix's diagonal shows the **standard protocol's** value of that dataset
(train and test splits disjoint), marked as such: fitting on a dataset's splits and scoring
all of it would count training images as test images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

TWINS_KEY = "twins"
RESERVED_KEYS: tuple[str, ...] = ("cross", "fr", TWINS_KEY, "meta")
DIAGONAL_NOTE = "diagonal (*): the standard protocol's value on that dataset, not a cross result"


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals, ``-`` for None/NaN."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def dataset_names(result: Mapping[str, Any]) -> list[str]:
    """The dataset entries of a result (keys that are not ``RESERVED_KEYS``)."""
    return [k for k in result if k not in RESERVED_KEYS]


def twin_roles(result: Mapping[str, Any]) -> list[str]:
    """The twins present in a result, in report order."""
    return list(result.get(TWINS_KEY) or {})


def section(result: Mapping[str, Any], role: str = "trained") -> Mapping[str, Any]:
    """The entries of one encoder: the result itself for ``trained``, else its twin section."""
    if role == "trained":
        return result
    return (result.get(TWINS_KEY) or {}).get(role) or {}


def label(result: Mapping[str, Any], role: str) -> str:
    """Display label of an encoder role (``trained``, ``init twin (imagenet)``, ...)."""
    meta = result.get("meta") or {}
    if role == "trained":
        return "trained"
    return ((meta.get(TWINS_KEY) or {}).get(role) or {}).get("label") or role.replace("_", " ")


def _n_failed(entry: Mapping[str, Any]) -> int | None:
    feats = entry.get("features") or {}
    return feats.get("n_failed")


def summary_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """datasets x SRCC/PLCC of the trained encoder and each twin, gains, alpha and counts."""
    roles = twin_roles(result)
    rows = []
    for name in dataset_names(result):
        e = result[name]
        row: dict[str, Any] = {"dataset": name, "srcc": e.get("srcc"), "plcc": e.get("plcc")}
        for role in roles:
            b = section(result, role).get(name) or {}
            row[f"{role}_srcc"] = b.get("srcc")
            row[f"{role}_plcc"] = b.get("plcc")
            row[f"gain_vs_{role}"] = (e["srcc"] - b["srcc"]
                                      if e.get("srcc") is not None and b.get("srcc") is not None
                                      else None)
        row.update({"alpha": e.get("alpha"), "n_images": e.get("n_images"),
                    "n_missing": e.get("n_missing"), "n_failed": _n_failed(e)})
        rows.append(row)
    cols = ["dataset", "srcc", "plcc"]
    for role in roles:
        cols += [f"{role}_srcc", f"{role}_plcc", f"gain_vs_{role}"]
    cols += ["alpha", "n_images", "n_missing", "n_failed"]
    return pd.DataFrame(rows, columns=cols)


def cross_matrix(result: Mapping[str, Any], metric: str = "srcc", role: str = "trained",
                 diagonal: bool = True) -> pd.DataFrame:
    """source x target matrix of one metric (rows: training set, columns: test set).

    The diagonal holds the standard protocol's value of each dataset (``diagonal``), or is
    empty (NaN).
    """
    sec = section(result, role)
    cross = sec.get("cross") or {}
    names = list(cross)
    data = []
    for s in names:
        row = []
        for t in names:
            if s == t:
                row.append((sec.get(s) or {}).get(metric) if diagonal else None)
            else:
                row.append(cross[s].get(t, {}).get(metric))
        data.append(row)
    return pd.DataFrame(data, index=pd.Index(names, name="source"),
                        columns=pd.Index(names, name="target"), dtype=float)


def cross_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """Long table of the cross-dataset results (off-diagonal pairs), trained and twins."""
    roles = twin_roles(result)
    rows = []
    for src, targets in (result.get("cross") or {}).items():
        for tgt, e in targets.items():
            row = {"source": src, "target": tgt, "srcc": e.get("srcc"), "plcc": e.get("plcc")}
            for role in roles:
                b = (section(result, role).get("cross") or {}).get(src, {}).get(tgt, {})
                row[f"{role}_srcc"] = b.get("srcc")
            row.update({"alpha": e.get("alpha"),
                        "orientation_flipped": e.get("orientation_flipped")})
            rows.append(row)
    cols = ["source", "target", "srcc", "plcc", *[f"{r}_srcc" for r in roles], "alpha",
            "orientation_flipped"]
    return pd.DataFrame(rows, columns=cols)


def mean_srcc(result: Mapping[str, Any], role: str = "trained") -> float | None:
    """Mean over datasets of the median SRCC (§7.6 global mean).

    None when no dataset has a score. NaN when a dataset's SRCC is NaN (constant predictions,
    a collapsed encoder): such a mean is not comparable with one over every dataset, so it is
    not quietly taken over the others."""
    sec = section(result, role)
    values = [sec[n]["srcc"] for n in dataset_names(result)
              if n in sec and sec[n].get("srcc") is not None]
    return float(np.mean(values)) if values else None


def markdown_table(frame: pd.DataFrame, digits: int = 4, index: bool = False) -> str:
    """A GitHub markdown table (floats rounded, None/NaN as ``-``)."""
    def cell(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)):
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.3g}" if v != 0 and abs(float(v)) < 1e-3 else f"{float(v):.{digits}f}"
        return str(v)

    cols = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = ([str(idx)] if index else []) + [cell(v) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def records_table(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """``markdown_table`` of a list of dicts (``-`` when empty)."""
    if not rows:
        return "| - |\n|---|\n| none |"
    return markdown_table(pd.DataFrame(rows, columns=columns))


def cross_markdown(result: Mapping[str, Any], metric: str = "srcc", role: str = "trained") -> str:
    """The cross matrix as markdown, diagonal cells marked ``*`` (standard protocol)."""
    mat = cross_matrix(result, metric, role)
    text = mat.map(lambda v: fmt(v)).astype(object)
    for name in mat.index:
        text.loc[name, name] = f"{fmt(mat.loc[name, name])}*"
    return markdown_table(text, index=True) + f"\n\n{DIAGONAL_NOTE}"


def failed_images(result: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(dataset, image, reason) of every image the trained encoder could not read."""
    out = []
    for name in dataset_names(result):
        for path, reason in (result[name].get("features") or {}).get("failed") or []:
            out.append((name, path, reason))
    return out


def format_table(result: Mapping[str, Any]) -> str:
    """The plain-text table ``shamisa evaluate`` prints: trained vs twins per dataset."""
    frame = summary_frame(result)
    roles = twin_roles(result)
    short = {r: label(result, r) for r in roles}
    head = f"{'dataset':<10} {'SRCC':>7} {'PLCC':>7}"
    for r in roles:
        head += f" | {short[r] + ' SRCC':>26} {'gain':>7}"
    head += f" {'alpha':>9} {'images':>7} {'missing':>7} {'failed':>6}"
    lines = [head, "-" * len(head)]
    for r in frame.to_dict("records"):
        line = f"{r['dataset']:<10} {fmt(r['srcc']):>7} {fmt(r['plcc']):>7}"
        for role in roles:
            line += f" | {fmt(r[f'{role}_srcc']):>26} {fmt(r[f'gain_vs_{role}']):>7}"
        # a count absent from some datasets is NaN in the frame (its column turns float)
        images, missing, failed = (int(r[k]) if pd.notna(r[k]) else "-"
                                   for k in ("n_images", "n_missing", "n_failed"))
        line += f" {r['alpha']:>9.3g} {images:>7} {missing:>7} {failed:>6}"
        lines.append(line)
    mean = mean_srcc(result)
    if mean is not None and len(frame) > 1:
        line = f"{'mean SRCC':<10} {mean:>7.4f} {'':>7}"
        for role in roles:
            m = mean_srcc(result, role)
            line += f" | {fmt(m):>26} {fmt(mean - m if m is not None else None):>7}"
        lines.append(line)
    failed = failed_images(result)
    if failed:
        lines += ["", f"failed images ({len(failed)}; left out of every metric):"]
        lines += [f"  {d}: {p}: {why}" for d, p, why in failed[:10]]
        if len(failed) > 10:
            lines.append(f"  ... and {len(failed) - 10} more (see the JSON)")
    if result.get("cross"):
        lines += ["", "cross-dataset SRCC (rows: trained on, columns: tested on)"]
        mat = cross_matrix(result)
        lines.append(f"{'':<10}" + "".join(f" {c:>9}" for c in mat.columns))
        for src, row in mat.iterrows():
            cells = [fmt(v) + ("*" if tgt == src else " ") for tgt, v in row.items()]
            lines.append(f"{src:<10}" + "".join(f" {c:>9}" for c in cells))
        lines.append(DIAGONAL_NOTE)
    if result.get("fr"):
        lines += ["", "full-reference (|h_ref - h_dist|) SRCC / PLCC"
                  + "".join(f" | {short[r]}" for r in roles)]
        for name, e in result["fr"].items():
            line = f"{name:<10} {fmt(e.get('srcc')):>7} {fmt(e.get('plcc')):>7}"
            for role in roles:
                b = (section(result, role).get("fr") or {}).get(name, {})
                line += f" | {fmt(b.get('srcc')):>7} {fmt(b.get('plcc')):>7}"
            lines.append(line)
    return "\n".join(lines)
