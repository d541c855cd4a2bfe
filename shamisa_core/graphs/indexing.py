"""Node numbering of one training step (METHOD.md §3.1, §2.4-2.5).

Reference nodes come first: ``(b, v) -> b*V + v``. Distorted nodes follow:
``(b, v, c, l) -> B*V + b*V*C*L + v*C*L + c*L + l``. View ``v < R`` is reference ``v`` at
full scale, ``v >= R`` is reference ``v - R`` at half scale. This is the flattening order of
``ref_imgs (B, V, ...)`` and ``dist_imgs (B, V, C, L, ...)``, so embedding rows line up with
node ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BatchShape:
    """Group shape of one step: B items, R references, C compositions, L levels (§2.4)."""

    B: int
    R: int
    C: int
    L: int

    def __post_init__(self) -> None:
        """Reject non-positive sizes."""
        for name in ("B", "R", "C", "L"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"BatchShape.{name} must be >= 1")

    @property
    def V(self) -> int:
        """Views per item: R references x 2 scales."""
        return 2 * self.R

    @property
    def n_ref(self) -> int:
        """Number of reference (pristine) nodes, ``B*V``."""
        return self.B * self.V

    @property
    def n_dist(self) -> int:
        """Number of distorted nodes, ``B*V*C*L``."""
        return self.B * self.V * self.C * self.L

    @property
    def n_nodes(self) -> int:
        """Total nodes ``N = B*V + B*V*C*L`` (METHOD §2.5)."""
        return self.n_ref + self.n_dist


def ref_node_id(b: Tensor | int, v: Tensor | int, shape: BatchShape) -> Tensor | int:
    """Node id of reference view ``v`` of item ``b`` (METHOD §3.1)."""
    return b * shape.V + v


def dist_node_id(
    b: Tensor | int, v: Tensor | int, c: Tensor | int, l: Tensor | int, shape: BatchShape
) -> Tensor | int:
    """Node id of the distorted crop (item b, view v, composition c, level l) (METHOD §3.1)."""
    V, C, L = shape.V, shape.C, shape.L
    return shape.n_ref + b * (V * C * L) + v * (C * L) + c * L + l


def node_table(shape: BatchShape, device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Per-node coordinates ``is_ref, b, v, c, l`` (length N; -1 for c/l of reference nodes)."""
    B, V, C, L = shape.B, shape.V, shape.C, shape.L
    kw = {"device": device, "dtype": torch.int64}
    rb, rv = torch.meshgrid(torch.arange(B, **kw), torch.arange(V, **kw), indexing="ij")
    db, dv, dc, dl = torch.meshgrid(
        torch.arange(B, **kw), torch.arange(V, **kw), torch.arange(C, **kw), torch.arange(L, **kw),
        indexing="ij",
    )
    neg = torch.full((shape.n_ref,), -1, **kw)
    return {
        "is_ref": torch.cat([torch.ones(shape.n_ref, **kw), torch.zeros(shape.n_dist, **kw)]),
        "b": torch.cat([rb.reshape(-1), db.reshape(-1)]),
        "v": torch.cat([rv.reshape(-1), dv.reshape(-1)]),
        "c": torch.cat([neg, dc.reshape(-1)]),
        "l": torch.cat([neg, dl.reshape(-1)]),
    }


class Edges:
    """A sparse N x N matrix in COO form: ``index`` (2, E) int64 (row, col) and ``values`` (E,).

    Plain container (no autograd logic of its own); ``values`` may carry gradients.
    """

    __slots__ = ("index", "values", "n")

    def __init__(self, index: Tensor, values: Tensor, n: int) -> None:
        """Wrap an index/value pair for an ``n`` x ``n`` matrix."""
        if index.dim() != 2 or index.shape[0] != 2 or index.shape[1] != values.shape[0]:
            raise ValueError(f"bad COO shapes: index {tuple(index.shape)}, values {tuple(values.shape)}")
        self.index = index
        self.values = values
        self.n = int(n)

    @property
    def n_edges(self) -> int:
        """Number of stored entries."""
        return int(self.values.shape[0])

    def to_dense(self) -> Tensor:
        """Dense N x N matrix (duplicates summed); for tests and debugging."""
        out = self.values.new_zeros(self.n * self.n)
        out = out.index_add(0, self.index[0] * self.n + self.index[1], self.values)
        return out.view(self.n, self.n)

    def scale(self, factor: Tensor | float) -> "Edges":
        """The same edges with values multiplied by ``factor``."""
        return Edges(self.index, self.values * factor, self.n)

    def __repr__(self) -> str:
        """Short description."""
        return f"Edges(n={self.n}, E={self.n_edges}, dtype={self.values.dtype})"


def empty_edges(n: int, dtype: torch.dtype, device: torch.device | str | None = None) -> Edges:
    """An edge set with no entries."""
    return Edges(
        torch.zeros(2, 0, dtype=torch.int64, device=device),
        torch.zeros(0, dtype=dtype, device=device),
        n,
    )


def coalesce(edges: Edges) -> Edges:
    """Sort entries row-major and sum duplicates (differentiable in ``values``).

    Equivalent to ``torch.sparse_coo_tensor(...).coalesce()`` but keeps autograd cheap: the
    key ``row*N + col`` is made unique and values are summed with ``index_add``.
    """
    n = edges.n
    if edges.n_edges == 0:
        return edges
    key = edges.index[0] * n + edges.index[1]
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    values = edges.values.new_zeros(uniq.numel()).index_add(0, inverse, edges.values)
    return Edges(torch.stack([uniq // n, uniq % n]), values, n)


def concat_edges(parts: list[Edges], n: int, dtype: torch.dtype, device: torch.device | str | None) -> Edges:
    """Stack several edge sets of the same N into one (uncoalesced) set."""
    if not parts:
        return empty_edges(n, dtype, device)
    return Edges(
        torch.cat([p.index for p in parts], dim=1),
        torch.cat([p.values for p in parts]),
        n,
    )


def upper_triangle(edges: Edges) -> Edges:
    """Keep entries with row < col (METHOD §3.5 step 4); lower-triangle entries are dropped."""
    keep = edges.index[0] < edges.index[1]
    return Edges(edges.index[:, keep], edges.values[keep], edges.n)
