"""``shamisa compare``: the registered quality-model versions side by side, from MLflow alone.

Each row comes from a ``shamisa-iqa`` version's tags (``registry.version_tags``): encoder
fingerprint, profile, init, training steps, corpus hash, git commit, per-dataset SRCC/PLCC,
mean SRCC; the version holding the ``champion`` alias is marked. No torch import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FIELDS = ("encoder_fingerprint", "profile", "init", "arch", "training_steps", "corpus_hash",
          "git_commit", "mean_srcc")


def compare_rows(tracking_uri: str, *, name: str = "shamisa-iqa",
                 datasets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One dict per version (newest first): version, champion, FIELDS, srcc/<d>, plcc/<d>."""
    from shamisa_core import tracking  # noqa: F401  (telemetry off)
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from .champion import CHAMPION_ALIAS

    client = MlflowClient(tracking_uri, tracking_uri)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return []
    try:
        champion = str(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:
        champion = None
    rows = []
    for mv in sorted(versions, key=lambda v: -int(v.version)):
        tags = mv.tags or {}
        row: dict[str, Any] = {"version": str(mv.version), "champion": str(mv.version) == champion}
        row.update({f: tags.get(f) for f in FIELDS})
        for key, value in sorted(tags.items()):
            if key.startswith(("srcc/", "plcc/")):
                d = key.split("/", 1)[1]
                if datasets is None or d in datasets:
                    try:
                        row[key] = float(value)
                    except ValueError:
                        row[key] = None
        rows.append(row)
    return rows


def format_compare(rows: list[dict[str, Any]], datasets: Sequence[str] | None = None) -> str:
    """A plain-text table (champion marked ``*``)."""
    if not rows:
        return "no registered shamisa-iqa version (run `make run` or `shamisa evaluate` + MLflow)"
    metric_cols = sorted({k for r in rows for k in r if k.startswith(("srcc/", "plcc/"))},
                         key=lambda k: (k.split("/", 1)[1], k))
    head = ["ver", "encoder", "profile", "init", "steps", "corpus", "commit", "mean SRCC",
            *metric_cols]
    lines = []
    for r in rows:
        def num(v: Any) -> str:
            try:
                return f"{float(v):.4f}"
            except (TypeError, ValueError):
                return "-"

        cells = [f"{r['version']}{'*' if r['champion'] else ''}",
                 str(r.get("encoder_fingerprint") or "-")[:8], str(r.get("profile") or "-"),
                 str(r.get("init") or "-"), str(r.get("training_steps") or "-"),
                 str(r.get("corpus_hash") or "-")[:8], str(r.get("git_commit") or "-")[:8],
                 num(r.get("mean_srcc")), *[num(r.get(c)) for c in metric_cols]]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in lines]
    out.append("* = champion")
    return "\n".join(out)
