r"""HEALPix neighbour tables and graph Laplacians, shared by ``neighbour_conv`` and ``cheb_conv``.

Everything here is in the **face order** of geoconv's HEALPix layout ``(B, C, 12, n, n)``:
pixel ``q = f n^2 + i n + j`` is ``faces[..., f, i, j]``, the NESTED pixel with healpy
``x = i``, ``y = j`` on base face ``f``, i.e. ``healpy.xyf2pix(n, i, j, f, nest=True)``.
So ``x.reshape(B, C, 12 * n * n)`` is a signal in face order with no copy. (That flat
order is *not* healpy's NESTED order, which interleaves the bits of ``i`` and ``j``.)

Tables are built once with healpy (imported only here, inside the builders: healpy is
GPL and ``import geoconv`` must not pull it in), kept in small bounded LRU caches, and
moved to each device once.

Neighbour directions
--------------------
healpy's ``get_all_neighbours`` lists the 8 neighbours in the order SW, W, NW, N, NE, E,
SE, S. Those compass names are face-local: inside a face they are the offsets
``(di, dj)`` of the 3x3 stencil around ``(i, j)``

=====  =====  =====
S      SW     W
SE     centre NW
E      NE     N
=====  =====  =====

(rows ``di = -1, 0, 1``, columns ``dj = -1, 0, 1``), and across a face border healpy
continues the same directions into the neighbouring face. At the 8 points where only 3
base faces meet, one stencil corner has no pixel (healpy returns -1): 24 pixels for
``nside >= 2``, and all 12 pixels (two corners each) for ``nside = 1``.

The 90 degree turn about +z maps pixel ``(f, i, j)`` to ``(f', i, j)`` with the face
permutation 0->1->2->3->0, 4->5->6->7->4, 8->9->10->11->8, and maps the neighbour in
every direction to the neighbour in the *same* direction (checked in the tests against
healpy). Stencil taps are therefore invariant under the turn, and any op built from them
commutes with it exactly.
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal, NamedTuple

import numpy as np
import torch

from geoconv.errors import ParameterError, ShapeError

__all__ = [
    "HEALPY_DIRECTIONS",
    "HEALPY_TO_STENCIL",
    "MISSING_POLICIES",
    "LAPLACIANS",
    "check_healpix_input",
    "face_nest_index",
    "neighbour_table",
    "stencil_tables",
    "graph_edges",
    "laplacian",
    "largest_eigenvalue",
    "rescaled_laplacian",
    "clear_caches",
]

HEALPY_DIRECTIONS: tuple[str, ...] = ("SW", "W", "NW", "N", "NE", "E", "SE", "S")
"""healpy's neighbour order (``get_all_neighbours``)."""

HEALPY_TO_STENCIL: tuple[int, ...] = (1, 2, 5, 8, 7, 6, 3, 0)
"""Flat 3x3 stencil position ``3 (di + 1) + (dj + 1)`` of each healpy direction; the centre is 4."""

CENTRE = 4

# The stencil corners that can be missing (W, N, E, S), each with the two stencil cells it
# shares an edge with: the neighbours on either side of it in healpy's compass ring.
_CORNER_NEIGHBOURS = {2: (1, 5), 8: (5, 7), 6: (7, 3), 0: (3, 1)}

MissingPolicy = Literal["mean", "centre", "zero"]
MISSING_POLICIES: tuple[str, ...] = ("mean", "centre", "zero")
"""What a missing stencil corner reads: the mean of its two edge-adjacent cells, the centre pixel, or 0."""

LaplacianKind = Literal["combinatorial", "normalized"]
LAPLACIANS: tuple[str, ...] = ("combinatorial", "normalized")

_DENSE_EIGEN_LIMIT = 3072  # pixels (nside <= 16): below this a dense eigensolve is cheap and exact
_ARPACK_TOL = 1e-5


# ----------------------------------------------------------------------------- input checks


def check_healpix_input(x: object, channels: int, weight: torch.Tensor, name: str = "x") -> tuple[int, int]:
    """Check a HEALPix tensor against an op's channels and parameters; return ``(nside, npix)``.

    Requires the layout ``(B, C, 12, n, n)`` with ``n`` a power of two (the grid's own
    check), ``C == channels``, and the dtype and device of ``weight``.
    """
    from geoconv.grids.healpix import GRID  # lazily: the ops package must import without the grid modules

    x = GRID.check(x, name)
    layout = GRID.layout
    nside = int(x.shape[-1])
    if x.shape[1] != channels:
        raise ShapeError(
            f"{name} must have in_channels={channels} channels in dim 1 of {layout}, got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ShapeError(
            f"{name} must have a floating-point dtype, got {x.dtype}; convert it with x.to({weight.dtype})"
        )
    if x.dtype != weight.dtype:
        raise ShapeError(
            f"{name} has dtype {x.dtype} but the op's parameters are {weight.dtype}; convert one to the other, "
            f"e.g. op.to({x.dtype}) or x.to({weight.dtype})"
        )
    if x.device != weight.device:
        raise ShapeError(
            f"{name} is on device {x.device} but the op's parameters are on {weight.device}; move one, "
            f"e.g. op.to({str(x.device)!r})"
        )
    return nside, 12 * nside * nside


def _check_nside(nside: int) -> int:
    if isinstance(nside, bool) or not isinstance(nside, int | np.integer) or nside < 1 or nside & (nside - 1):
        raise ParameterError(f"nside must be a power of two >= 1, got {nside!r}")
    return int(nside)


# ----------------------------------------------------------------------------- tables (numpy)


@functools.lru_cache(maxsize=16)
def face_nest_index(nside: int) -> np.ndarray:
    """healpy NESTED index of every pixel in face order, shape ``(12 n^2,)``, int64 (read-only)."""
    import healpy

    n = _check_nside(nside)
    f, i, j = np.meshgrid(np.arange(12), np.arange(n), np.arange(n), indexing="ij")
    nest = np.asarray(healpy.xyf2pix(n, i.ravel(), j.ravel(), f.ravel(), nest=True), dtype=np.int64)
    nest.flags.writeable = False
    return nest


@functools.lru_cache(maxsize=16)
def neighbour_table(nside: int) -> np.ndarray:
    """healpy's 8 neighbours of every pixel, in face order, shape ``(12 n^2, 8)``, int64 (read-only).

    Column ``t`` is direction :data:`HEALPY_DIRECTIONS` ``[t]``; entries are face-order
    pixels, ``-1`` where healpy has no neighbour.
    """
    import healpy

    n = _check_nside(nside)
    nest = face_nest_index(n)
    face_of_nest = np.empty_like(nest)
    face_of_nest[nest] = np.arange(nest.size)
    nb = np.asarray(healpy.get_all_neighbours(n, nest, nest=True), dtype=np.int64).T  # (P, 8), NESTED
    table = np.where(nb < 0, -1, face_of_nest[np.maximum(nb, 0)])
    table.flags.writeable = False
    return table


class StencilTables(NamedTuple):
    """The 3x3 stencil gather of ``neighbour_conv`` on one device.

    Attributes
    ----------
    index : torch.Tensor
        int64, ``(9 * P,)``: entry ``s * P + q`` is the face-order pixel that stencil cell
        ``s`` of pixel ``q`` reads (a missing corner reads the centre ``q``).
    missing : torch.Tensor
        int64, ``(m,)``: positions ``s * P + q`` of the missing corners in the gathered taps.
    adjacent : torch.Tensor
        int64, ``(2, m)``: positions in the gathered taps of the two cells edge-adjacent
        to each missing corner.
    """

    index: torch.Tensor
    missing: torch.Tensor
    adjacent: torch.Tensor


@functools.lru_cache(maxsize=16)
def _stencil_arrays(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = neighbour_table(nside)
    npix = table.shape[0]
    centre = np.arange(npix)
    stencil = np.empty((9, npix), dtype=np.int64)
    stencil[CENTRE] = centre
    for direction, cell in enumerate(HEALPY_TO_STENCIL):
        stencil[cell] = np.where(table[:, direction] < 0, centre, table[:, direction])
    directions, pixels = np.nonzero(table.T < 0)
    cells = np.asarray(HEALPY_TO_STENCIL, dtype=np.int64)[directions]
    missing = cells * npix + pixels
    adjacent = np.array([[_CORNER_NEIGHBOURS[c][k] for c in cells] for k in (0, 1)], dtype=np.int64).reshape(2, -1)
    adjacent = adjacent * npix + pixels
    return stencil.reshape(-1), missing.astype(np.int64), adjacent.astype(np.int64)


@functools.lru_cache(maxsize=16)
def stencil_tables(nside: int, device: torch.device) -> StencilTables:
    """The :class:`StencilTables` of ``nside`` on ``device`` (built once, cached)."""
    index, missing, adjacent = _stencil_arrays(_check_nside(nside))
    return StencilTables(*(torch.from_numpy(a.copy()).to(device) for a in (index, missing, adjacent)))


# ----------------------------------------------------------------------------- the graph


@functools.lru_cache(maxsize=16)
def graph_edges(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The weighted HEALPix graph as a symmetric edge list ``(rows, cols, weights)``.

    Nodes are pixels in face order; ``q`` and ``r`` are joined when healpy lists ``r`` as
    a neighbour of ``q`` or ``q`` of ``r`` (healpy's relation is symmetric; the union makes
    it so by construction). Each undirected edge appears in both directions. Weights are
    DeepSphere's (Perraudin et al. 2019) Gaussian of the chord length

    .. math::

        w_{qr} = \exp\!\Big(-\frac{\lVert v_q - v_r\rVert^2}{2\rho^2}\Big),\qquad
        \rho^2 = \operatorname{mean}_{\text{edges}} \lVert v_q - v_r\rVert^2

    with :math:`v` the unit vectors of healpy's pixel centres.
    """
    import healpy

    n = _check_nside(nside)
    table = neighbour_table(n)
    npix = table.shape[0]
    rows = np.repeat(np.arange(npix), 8)
    cols = table.reshape(-1)
    keep = cols >= 0
    directed = np.stack([rows[keep], cols[keep]])
    rows, cols = np.unique(np.concatenate([directed, directed[::-1]], axis=1), axis=1)
    vectors = np.stack(healpy.pix2vec(n, face_nest_index(n), nest=True), axis=-1)
    squared = np.sum((vectors[rows] - vectors[cols]) ** 2, axis=-1)
    weights = np.exp(-squared / (2.0 * squared.mean()))
    for array in (rows, cols, weights):
        array.flags.writeable = False
    return rows, cols, weights


@functools.lru_cache(maxsize=16)
def laplacian(nside: int, kind: LaplacianKind = "combinatorial"):  # -> scipy.sparse.csr_matrix
    r"""The graph Laplacian of :func:`graph_edges` as a scipy CSR matrix (float64).

    ``combinatorial``: :math:`L = D - W`; ``normalized``: :math:`L = I - D^{-1/2} W D^{-1/2}`,
    with :math:`D = \operatorname{diag}(W \mathbf 1)`.
    """
    import scipy.sparse as sp

    if kind not in LAPLACIANS:
        raise ParameterError(f"laplacian must be one of {LAPLACIANS}, got {kind!r}")
    rows, cols, weights = graph_edges(nside)
    npix = 12 * nside * nside
    w = sp.csr_matrix((weights, (rows, cols)), shape=(npix, npix))
    degree = np.asarray(w.sum(axis=1)).ravel()
    if kind == "combinatorial":
        return (sp.diags(degree) - w).tocsr()
    scale = sp.diags(1.0 / np.sqrt(degree))
    return (sp.identity(npix) - scale @ w @ scale).tocsr()


def largest_eigenvalue(matrix, dense: bool | None = None) -> float:
    """Largest eigenvalue of a symmetric scipy sparse matrix.

    Dense (``numpy.linalg.eigvalsh``, exact to round-off) up to 3072 rows, else ARPACK's
    Lanczos (``scipy.sparse.linalg.eigsh``) to a relative tolerance of 1e-5 from a fixed
    start vector, so the value is the same on every run. ``dense`` forces either path.
    """
    size = matrix.shape[0]
    if dense is None:
        dense = size <= _DENSE_EIGEN_LIMIT
    if dense:
        return float(np.linalg.eigvalsh(matrix.toarray())[-1])
    from scipy.sparse.linalg import eigsh

    start = np.random.default_rng(0).standard_normal(size)
    return float(eigsh(matrix, k=1, which="LA", tol=_ARPACK_TOL, v0=start, return_eigenvectors=False)[0])


@functools.lru_cache(maxsize=16)
def _lambda_max(nside: int, kind: LaplacianKind) -> float:
    return largest_eigenvalue(laplacian(nside, kind))


@functools.lru_cache(maxsize=16)
def _rescaled_csr(nside: int, kind: LaplacianKind, lambda_max: float | None):
    import scipy.sparse as sp

    lam = _lambda_max(nside, kind) if lambda_max is None else lambda_max
    matrix = laplacian(nside, kind)
    return ((2.0 / lam) * matrix - sp.identity(matrix.shape[0])).tocsr(), lam


def rescaled_laplacian(
    nside: int, kind: LaplacianKind = "combinatorial", lambda_max: float | None = None
) -> tuple[object, float]:
    r"""The rescaled Laplacian :math:`\tilde L = 2L/\lambda_{max} - I` (scipy CSR) and the :math:`\lambda_{max}` used.

    ``lambda_max=None`` computes it with :func:`largest_eigenvalue` (cached per nside).
    """
    return _rescaled_csr(_check_nside(nside), kind, lambda_max)


@functools.lru_cache(maxsize=16)
def rescaled_laplacian_tensor(
    nside: int, kind: LaplacianKind, lambda_max: float | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """:func:`rescaled_laplacian` as a torch sparse CSR tensor on ``device`` (cached)."""
    matrix, _ = rescaled_laplacian(nside, kind, lambda_max)
    matrix.sort_indices()
    with warnings.catch_warnings():
        # torch flags sparse CSR as "beta" once per process; the matmul used here is stable.
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data).to(dtype),
            size=matrix.shape,
            check_invariants=False,
        ).to(device)


def clear_caches() -> None:
    """Drop every cached table, Laplacian and eigenvalue (e.g. to free GPU memory)."""
    for cached in (
        face_nest_index,
        neighbour_table,
        _stencil_arrays,
        stencil_tables,
        graph_edges,
        laplacian,
        _lambda_max,
        _rescaled_csr,
        rescaled_laplacian_tensor,
    ):
        cached.cache_clear()
