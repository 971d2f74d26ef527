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

======  ======  ======
S       SW      W
SE      centre  NW
E       NE      N
======  ======  ======

(rows ``di = -1, 0, 1``, columns ``dj = -1, 0, 1``), and across a face border healpy
continues the same directions into the neighbouring face. At the 8 points where only 3
base faces meet, one stencil corner has no pixel (healpy returns -1): 24 pixels for
``nside >= 2``, and all 12 pixels (two corners each) for ``nside = 1``.

The 90 degree turn about +z maps pixel ``(f, i, j)`` to ``(f', i, j)`` with the face
permutation 0->1->2->3->0, 4->5->6->7->4, 8->9->10->11->8, and maps the neighbour in
every direction to the neighbour in the *same* direction (checked in the tests against
healpy). Stencil taps are therefore invariant under the turn, and any op built from them
commutes with it exactly.

Examples
--------
>>> from geoconv.ops._healpix_graph import HEALPY_DIRECTIONS, neighbour_table
>>> table = neighbour_table(2)  # (48, 8): face order, healpy's directions, -1 where none
>>> int((table < 0).sum())
24
>>> [HEALPY_DIRECTIONS[d] for d in range(8) if table[1, d] < 0]  # face 0, (i, j) = (0, 1): the W corner
['W']
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal, NamedTuple

import numpy as np
import torch

from geoconv._cache import TABLES, cached, register_builder
from geoconv.errors import ParameterError
from geoconv.ops._common import check_op_input

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
    "lambda_max",
    "rescaled_laplacian",
    "rescaled_laplacian_tensor",
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

MISSING_POLICIES: tuple[str, ...] = ("mean", "centre", "zero")
"""What a missing stencil corner reads: the mean of its two edge-adjacent cells, the centre pixel, or 0."""

LaplacianKind = Literal["combinatorial", "normalized"]
LAPLACIANS: tuple[str, ...] = ("combinatorial", "normalized")

_DENSE_EIGEN_LIMIT = 768  # pixels (nside <= 8): up to here a dense eigensolve is cheap and exact
_ARPACK_TOL = 5e-3  # DeepSphere's tolerance; see largest_eigenvalue


# ----------------------------------------------------------------------------- input checks


def check_healpix_input(
    x: object, channels: int, weight: torch.Tensor, name: str = "x", op: str = "op"
) -> tuple[int, int]:
    """Check a HEALPix tensor against an op's channels and parameters; return ``(nside, npix)``.

    Requires the layout ``(B, C, 12, n, n)`` with ``n`` a power of two (the grid's own
    check), ``C == channels``, and the dtype and device of ``weight``
    (:func:`geoconv.ops._common.check_op_input`, the checks every op shares).
    """
    from geoconv.grids.healpix import GRID  # lazily: the ops package must import without the grid modules

    # No autocast exception: the graph ops' sparse products take one dtype.
    x = check_op_input(op, GRID, x, channels, name=name, floating=True, like=weight, autocast=False)
    nside = int(x.shape[-1])
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
    """The 3x3 stencil of ``neighbour_conv`` on one device (``P = 12 n^2`` pixels, ``m`` missing corners).

    Attributes
    ----------
    index : torch.Tensor
        int64, ``(9 * P,)``: entry ``s * P + q`` is the face-order pixel that stencil cell
        ``s`` of pixel ``q`` reads (a missing corner reads the centre ``q`` here).
    pixel, cell : torch.Tensor
        int64, ``(m,)``: the pixel and the stencil cell of each missing corner.
    adjacent : torch.Tensor
        int64, ``(2, m)``: the pixels in the two stencil cells that share an edge with each
        missing corner (healpy's neighbours on either side of the missing direction).
    padded : torch.Tensor
        int64, ``(m,)``: the flat position of each missing corner in the face stack padded
        by one pixel on every side, ``(12, n + 2, n + 2)``.
    """

    index: torch.Tensor
    pixel: torch.Tensor
    cell: torch.Tensor
    adjacent: torch.Tensor
    padded: torch.Tensor


@functools.lru_cache(maxsize=16)
def _stencil_arrays(nside: int) -> tuple[np.ndarray, ...]:
    table = neighbour_table(nside)
    n, npix = nside, table.shape[0]
    centre = np.arange(npix)
    stencil = np.empty((9, npix), dtype=np.int64)
    stencil[CENTRE] = centre
    for direction, cell in enumerate(HEALPY_TO_STENCIL):
        stencil[cell] = np.where(table[:, direction] < 0, centre, table[:, direction])
    directions, pixels = np.nonzero(table.T < 0)
    cells = np.asarray(HEALPY_TO_STENCIL, dtype=np.int64)[directions]
    adjacent_cells = np.array([[_CORNER_NEIGHBOURS[c][k] for c in cells] for k in (0, 1)], dtype=np.int64)
    adjacent = stencil[adjacent_cells.reshape(2, -1), pixels]
    face, i, j = pixels // (n * n), (pixels // n) % n, pixels % n
    padded = (face * (n + 2) + i + 1 + cells // 3 - 1) * (n + 2) + j + 1 + cells % 3 - 1
    return stencil.reshape(-1), pixels, cells, adjacent, padded


@register_builder("healpix_stencil")
def _build_stencil_tables(nside: int, device: torch.device) -> StencilTables:
    arrays = _stencil_arrays(nside)
    return StencilTables(*(torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device) for a in arrays))


def stencil_tables(nside: int, device: torch.device) -> StencilTables:
    """The :class:`StencilTables` of ``nside`` on ``device`` (built once, in the bounded shared cache)."""
    return cached("healpix_stencil", torch.device(device), _check_nside(nside))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- the graph


def graph_edges(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The weighted HEALPix graph as a symmetric edge list ``(rows, cols, weights)``.

    Nodes are pixels in face order; ``q`` and ``r`` are joined when healpy lists ``r`` as
    a neighbour of ``q`` or ``q`` of ``r`` (healpy's relation is symmetric; the union makes
    it so by construction). Each undirected edge appears in both directions. Weights are
    DeepSphere's (Perraudin et al. 2019) Gaussian of the chord length

    .. math::

        w_{qr} = \exp\!\Big(-\frac{\lVert v_q - v_r\rVert^2}{2\rho^2}\Big),\qquad
        \rho^2 = \operatorname{mean}_{\text{edges}} \lVert v_q - v_r\rVert^2

    with :math:`v` the unit vectors of healpy's pixel centres. (Not cached: at high nside
    the edge list is the largest object here; :func:`laplacian` keeps the result.)
    """
    import healpy

    n = _check_nside(nside)
    table = neighbour_table(n)
    npix = table.shape[0]
    rows = np.repeat(np.arange(npix), 8)
    cols = table.reshape(-1)
    keep = cols >= 0
    rows, cols = rows[keep], cols[keep]
    # Edge keys q * P + r of both directions, sorted and deduplicated (np.unique is far slower here).
    keys = np.sort(np.concatenate([rows * npix + cols, cols * npix + rows]), kind="stable")
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    rows, cols = keys // npix, keys % npix
    vectors = np.stack(healpy.pix2vec(n, face_nest_index(n), nest=True), axis=-1)
    squared = np.sum((vectors[rows] - vectors[cols]) ** 2, axis=-1)
    weights = np.exp(-squared / (2.0 * squared.mean()))
    return rows, cols, weights


@functools.lru_cache(maxsize=4)
def laplacian(nside: int, kind: LaplacianKind = "combinatorial"):  # -> scipy.sparse.csr_matrix
    r"""The graph Laplacian of :func:`graph_edges` as a scipy CSR matrix (float64; cached, do not modify).

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
    r"""The largest eigenvalue of a symmetric scipy sparse matrix, or a slight overestimate of it.

    Up to 768 rows (nside 8): exact to round-off (``numpy.linalg.eigvalsh``). Above:
    ARPACK's Lanczos estimate (``scipy.sparse.linalg.eigsh``, relative tolerance
    :math:`\tau = 5 \cdot 10^{-3}`, from a fixed start vector so the value is the same on
    every run) times :math:`1 + 2\tau`, DeepSphere's rule. A Ritz value never exceeds the
    largest eigenvalue, and the HEALPix Laplacians' top eigenvalues are so clustered that
    a tight tolerance costs minutes at high nside; the 1% margin keeps the rescaled
    spectrum inside :math:`[-1, 1]`. ``dense`` forces either path.
    """
    size = matrix.shape[0]
    if dense is None:
        dense = size <= _DENSE_EIGEN_LIMIT
    if dense:
        return float(np.linalg.eigvalsh(matrix.toarray())[-1])
    from scipy.sparse.linalg import eigsh

    start = np.random.default_rng(0).standard_normal(size)
    estimate = eigsh(matrix, k=1, which="LA", tol=_ARPACK_TOL, v0=start, return_eigenvectors=False)[0]
    return float(estimate * (1 + 2 * _ARPACK_TOL))


@functools.lru_cache(maxsize=64)
def _lambda_max(nside: int, kind: LaplacianKind) -> float:
    return largest_eigenvalue(laplacian(nside, kind))


def lambda_max(nside: int, kind: LaplacianKind = "combinatorial", given: float | None = None) -> float:
    """The :math:`\\lambda_{max}` that rescales the Laplacian: ``given``, or :func:`largest_eigenvalue` (cached)."""
    return _lambda_max(_check_nside(nside), kind) if given is None else float(given)


def rescaled_laplacian(nside: int, kind: LaplacianKind = "combinatorial", given: float | None = None):
    r"""The rescaled Laplacian :math:`\tilde L = 2L/\lambda_{max} - I` (a new scipy CSR matrix, float64).

    Returns
    -------
    (scipy.sparse.csr_matrix, float)
        :math:`\tilde L` and the :math:`\lambda_{max}` used (see :func:`lambda_max`).
    """
    import scipy.sparse as sp

    lam = lambda_max(nside, kind, given)
    matrix = laplacian(nside, kind)
    rescaled = ((2.0 / lam) * matrix - sp.identity(matrix.shape[0])).tocsr()
    rescaled.sort_indices()
    return rescaled, lam


@register_builder("chebyshev_laplacian")
def _build_laplacian_tensor(
    nside: int, kind: LaplacianKind, given: float | None, dtype: str, device: torch.device
) -> torch.Tensor:
    matrix, _ = rescaled_laplacian(nside, kind, given)
    # int32 indices (what cuSPARSE works with natively) halve the index memory.
    index_dtype = np.int32 if matrix.nnz < 2**31 else np.int64
    with warnings.catch_warnings():
        # torch flags sparse CSR as "beta" once per process; the matmul used here is stable.
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(index_dtype)),
            torch.from_numpy(matrix.indices.astype(index_dtype)),
            torch.from_numpy(matrix.data).to(getattr(torch, dtype)),
            size=matrix.shape,
            check_invariants=False,
        ).to(device)


def rescaled_laplacian_tensor(
    nside: int, kind: LaplacianKind, given: float | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """:func:`rescaled_laplacian` as a torch sparse CSR tensor on ``device`` (in the bounded shared cache)."""
    # The dtype goes by name: the cache key's parts are plain constants (see geoconv.grids._gather.cached).
    name = str(dtype).removeprefix("torch.")
    return cached("chebyshev_laplacian", torch.device(device), nside, kind, given, name)  # type: ignore[return-value]


def clear_caches() -> None:
    """Drop every cached table, Laplacian and eigenvalue, and the shared device tables (e.g. to free GPU memory)."""
    for function in (
        face_nest_index,
        neighbour_table,
        _stencil_arrays,
        laplacian,
        _lambda_max,
    ):
        function.cache_clear()
    TABLES.clear()
