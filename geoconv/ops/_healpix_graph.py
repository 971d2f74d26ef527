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
    "KERNEL_WIDTHS",
    "DEFAULT_KERNEL_WIDTH",
    "DEEPSPHERE2020_HALF_WEIGHT_CHORD",
    "check_kernel_width",
    "kernel_width_t",
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
    "harmonic_rayleigh_quotients",
    "isotropy_error",
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

KernelWidth = str | float
KERNEL_WIDTHS: tuple[str, ...] = ("mean", "deepsphere2020")
"""The named kernel-width rules of :func:`kernel_width_t` (a positive float gives ``t`` itself)."""

DEFAULT_KERNEL_WIDTH: KernelWidth = "deepsphere2020"
"""The rule ``cheb_conv`` and the graph functions use unless told otherwise (see :func:`kernel_width_t`)."""

DEEPSPHERE2020_HALF_WEIGHT_CHORD: dict[int, float] = {
    32: 0.02500,
    64: 0.01228,
    128: 0.00614,
    256: 0.00307,
    512: 0.00154,
    1024: 0.00077,
}
r"""Defferrard et al. (2020)'s optimal widths for the 8-neighbour HEALPix graph, per nside.

Each value :math:`\sigma` is the chord at which an edge weight is 1/2 (PyGSP's
``kernel_width``), so :math:`t = \sigma^2 / (4 \ln 2)`. Source: the paper's figure
("kernel widths"), data in ``figures/kernel_widths.py`` of
github.com/deepsphere/paper-deepsphere-iclr2020 (key ``8`` neighbours), also used by
``deepsphere/utils.py`` of deepsphere-cosmo-tf2.
"""


def _fit_half_weight_chord() -> tuple[float, float]:
    # Least squares line log sigma = a + b log nside through the table (b comes out -1.003).
    x = np.log(np.array(list(DEEPSPHERE2020_HALF_WEIGHT_CHORD), dtype=np.float64))
    y = np.log(np.array(list(DEEPSPHERE2020_HALF_WEIGHT_CHORD.values())))
    slope = float(np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2))
    return float(y.mean() - slope * x.mean()), slope


_SIGMA_FIT = _fit_half_weight_chord()

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


def check_kernel_width(kernel_width: object) -> KernelWidth:
    """Return ``kernel_width`` as one of :data:`KERNEL_WIDTHS` or a positive finite ``float``.

    Raises :class:`~geoconv.errors.ParameterError` for an unknown name (listing the valid
    ones), a number that is not > 0 and finite, or any other type.
    """
    if isinstance(kernel_width, str):
        if kernel_width not in KERNEL_WIDTHS:
            raise ParameterError(
                f"kernel_width must be one of {KERNEL_WIDTHS} or a positive float t, got {kernel_width!r}"
            )
        return kernel_width
    if isinstance(kernel_width, bool) or not isinstance(kernel_width, int | float | np.integer | np.floating):
        raise ParameterError(
            f"kernel_width must be one of {KERNEL_WIDTHS} or a positive float t, "
            f"got {kernel_width!r} ({type(kernel_width).__name__})"
        )
    value = float(kernel_width)
    if not (value > 0 and np.isfinite(value)):
        raise ParameterError(f"kernel_width must be a positive finite float t when a number, got {value}")
    return value


def kernel_width_t(nside: int, kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH) -> float:
    r"""The heat-kernel width :math:`t` of the weights :math:`w = \exp(-d^2 / 4t)` at ``nside``.

    ``"mean"``
        Perraudin et al. (2019): :math:`t = \tfrac12 \operatorname{mean}_{\text{edges}} d^2`,
        i.e. :math:`w = \exp(-d^2 / 2\rho^2)` with :math:`\rho^2` the mean squared chord.
    ``"deepsphere2020"``
        Defferrard et al. (2020), section "Finding the optimal weighting scheme": the
        widths that minimise their equivariance error for the 8-neighbour graph,
        :math:`t = \sigma^2 / (4\ln 2)` with :math:`\sigma` from
        :data:`DEEPSPHERE2020_HALF_WEIGHT_CHORD` (nside 32 to 1024). Other nsides use the
        least-squares power law through that table, :math:`\sigma = 0.7998\, N_{side}^{-1.0026}`
        (so :math:`t \propto N_{side}^{-2}`, like the squared pixel spacing), the
        extrapolation of deepsphere-cosmo-tf2's ``utils.py``. (nside 16: 0.27 x ``"mean"``.)
    a positive float
        :math:`t` itself.

    >>> f"{kernel_width_t(64, 'deepsphere2020'):.4e}"  # 0.01228^2 / (4 ln 2)
    '5.4389e-05'
    >>> kernel_width_t(8, 0.25)
    0.25
    """
    n = _check_nside(nside)
    kernel_width = check_kernel_width(kernel_width)
    if kernel_width == "mean":
        _, _, squared = _edge_list(n)
        return float(squared.mean() / 2.0)
    if kernel_width == "deepsphere2020":
        sigma = DEEPSPHERE2020_HALF_WEIGHT_CHORD.get(n)
        if sigma is None:
            intercept, slope = _SIGMA_FIT
            sigma = float(np.exp(intercept + slope * np.log(n)))
        return sigma * sigma / (4.0 * np.log(2.0))
    return float(kernel_width)


def _edge_list(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric edge list ``(rows, cols, squared chords)`` of the healpy neighbour graph."""
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
    return rows, cols, squared


def graph_edges(
    nside: int, kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The weighted HEALPix graph as a symmetric edge list ``(rows, cols, weights)``.

    Nodes are pixels in face order; ``q`` and ``r`` are joined when healpy lists ``r`` as
    a neighbour of ``q`` or ``q`` of ``r`` (healpy's relation is symmetric; the union makes
    it so by construction). Each undirected edge appears in both directions. Weights are
    the heat kernel of the chord length (Belkin & Niyogi; DeepSphere)

    .. math::

        w_{qr} = \exp\!\Big(-\frac{\lVert v_q - v_r\rVert^2}{4t}\Big)

    with :math:`v` the unit vectors of healpy's pixel centres and :math:`t` from
    :func:`kernel_width_t` (``"deepsphere2020"`` by default; ``"mean"`` is the 2019 rule
    :math:`4t = 2 \operatorname{mean} d^2`). (Not cached: at high nside the edge list is
    the largest object here; :func:`laplacian` keeps the result.)

    Raises :class:`~geoconv.errors.ParameterError` when a given ``t`` is so small that
    a weight underflows (the graph would fall apart).
    """
    rows, cols, squared = _edge_list(nside)
    t = kernel_width_t(nside, kernel_width)
    weights = np.exp(-squared / (4.0 * t))
    if weights.min() < np.finfo(np.float64).tiny:
        raise ParameterError(
            f"kernel_width t={t:g} is too small for nside {nside}: edge weights exp(-d^2/4t) underflow "
            f"(the longest edge has d^2 = {squared.max():.3g}); use t >= {squared.max() / 2800:.3g}"
        )
    return rows, cols, weights


@functools.lru_cache(maxsize=4)
def _laplacian(nside: int, kind: str, kernel_width: KernelWidth):  # -> scipy.sparse.csr_matrix
    import scipy.sparse as sp

    rows, cols, weights = graph_edges(nside, kernel_width)
    npix = 12 * nside * nside
    w = sp.csr_matrix((weights, (rows, cols)), shape=(npix, npix))
    degree = np.asarray(w.sum(axis=1)).ravel()
    if kind == "combinatorial":
        return (sp.diags(degree) - w).tocsr()
    scale = sp.diags(1.0 / np.sqrt(degree))
    return (sp.identity(npix) - scale @ w @ scale).tocsr()


def laplacian(
    nside: int, kind: LaplacianKind = "combinatorial", kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH
):  # -> scipy.sparse.csr_matrix
    r"""The graph Laplacian of :func:`graph_edges` as a scipy CSR matrix (float64; cached, do not modify).

    ``combinatorial``: :math:`L = D - W`; ``normalized``: :math:`L = I - D^{-1/2} W D^{-1/2}`,
    with :math:`D = \operatorname{diag}(W \mathbf 1)`. ``kernel_width`` as in
    :func:`kernel_width_t`; the cache is keyed by all three arguments.
    """
    if kind not in LAPLACIANS:
        raise ParameterError(f"laplacian must be one of {LAPLACIANS}, got {kind!r}")
    return _laplacian(_check_nside(nside), kind, check_kernel_width(kernel_width))


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
def _lambda_max(nside: int, kind: LaplacianKind, kernel_width: KernelWidth) -> float:
    return largest_eigenvalue(laplacian(nside, kind, kernel_width))


def lambda_max(
    nside: int,
    kind: LaplacianKind = "combinatorial",
    given: float | None = None,
    kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH,
) -> float:
    """The :math:`\\lambda_{max}` that rescales the Laplacian: ``given``, or :func:`largest_eigenvalue` (cached)."""
    if given is not None:
        return float(given)
    return _lambda_max(_check_nside(nside), kind, check_kernel_width(kernel_width))


def rescaled_laplacian(
    nside: int,
    kind: LaplacianKind = "combinatorial",
    given: float | None = None,
    kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH,
):
    r"""The rescaled Laplacian :math:`\tilde L = 2L/\lambda_{max} - I` (a new scipy CSR matrix, float64).

    Returns
    -------
    (scipy.sparse.csr_matrix, float)
        :math:`\tilde L` and the :math:`\lambda_{max}` used (see :func:`lambda_max`).
    """
    import scipy.sparse as sp

    lam = lambda_max(nside, kind, given, kernel_width)
    matrix = laplacian(nside, kind, kernel_width)
    rescaled = ((2.0 / lam) * matrix - sp.identity(matrix.shape[0])).tocsr()
    rescaled.sort_indices()
    return rescaled, lam


@register_builder("chebyshev_laplacian")
def _build_laplacian_tensor(
    nside: int, kind: LaplacianKind, given: float | None, kernel_width: KernelWidth, dtype: str, device: torch.device
) -> torch.Tensor:
    matrix, _ = rescaled_laplacian(nside, kind, given, kernel_width)
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
    nside: int,
    kind: LaplacianKind,
    given: float | None,
    device: torch.device,
    dtype: torch.dtype,
    kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH,
) -> torch.Tensor:
    """:func:`rescaled_laplacian` as a torch sparse CSR tensor on ``device`` (in the bounded shared cache).

    The cache key holds every argument, ``kernel_width`` included (as its checked value).
    """
    # The dtype goes by name: the cache key's parts are plain constants (see geoconv.grids._gather.cached).
    name = str(dtype).removeprefix("torch.")
    width = check_kernel_width(kernel_width)
    return cached("chebyshev_laplacian", torch.device(device), nside, kind, given, width, name)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- isotropy


@functools.lru_cache(maxsize=2)
def _real_harmonics(nside: int, lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """The real harmonics of degree <= lmax in face order, ``(H, P)``, and each one's degree ``(H,)``."""
    import healpy

    size = healpy.Alm.getsize(lmax)
    maps, degrees = [], []
    for ell in range(lmax + 1):
        for m in range(ell + 1):
            for value in (1.0, 1j) if m else (1.0,):
                alm = np.zeros(size, dtype=np.complex128)
                alm[healpy.Alm.getidx(lmax, ell, m)] = value
                # One map per call: healpy's many-map call is ~100x slower here.
                maps.append(healpy.alm2map(alm, nside, lmax=lmax))  # RING order
                degrees.append(ell)
    maps = np.array(maps)
    return maps[:, healpy.nest2ring(nside, face_nest_index(nside))], np.array(degrees)


def harmonic_rayleigh_quotients(
    nside: int,
    kind: LaplacianKind = "combinatorial",
    kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH,
    lmax: int | None = None,
) -> list[np.ndarray]:
    r"""Rayleigh quotients of the graph Laplacian on the real spherical harmonics, per degree.

    Entry ``l`` (``0 <= l <= lmax``, default ``lmax = 2 nside``) is an array of ``2l + 1``
    values :math:`\langle Y, L Y\rangle / \langle Y, Y\rangle`, one per real harmonic of
    degree ``l`` (order ``m = 0``, then :math:`\cos m\phi` and :math:`\sin m\phi` for
    ``m = 1 .. l``), each sampled at healpy's pixel centres by ``healpy.alm2map`` with one
    non-zero :math:`a_{lm}` (1, or :math:`i` for the sine) and put in face order. For the
    Laplace-Beltrami operator they would all equal :math:`l (l + 1)`.
    """
    n = _check_nside(nside)
    lmax = 2 * n if lmax is None else int(lmax)
    if lmax < 0 or lmax > 3 * n - 1:
        raise ParameterError(f"lmax must be in [0, 3 nside - 1] = [0, {3 * n - 1}] at nside {n}, got {lmax}")
    maps, degrees_array = _real_harmonics(n, lmax)
    lap = laplacian(n, kind, kernel_width)
    quotients = np.einsum("hp,hp->h", maps, (lap @ maps.T).T) / np.einsum("hp,hp->h", maps, maps)
    return [quotients[degrees_array == ell] for ell in range(lmax + 1)]


def isotropy_error(
    nside: int,
    kind: LaplacianKind = "combinatorial",
    kernel_width: KernelWidth = DEFAULT_KERNEL_WIDTH,
    lmax: int | None = None,
) -> float:
    r"""How far the graph Laplacian is from acting on each harmonic degree by one eigenvalue.

    .. math::

        \epsilon = \max_{1 \le l \le l_{max}}
            \frac{\max_m R_{lm} - \min_m R_{lm}}{\operatorname{mean}_m R_{lm}}

    with :math:`R_{lm}` the Rayleigh quotients of :func:`harmonic_rayleigh_quotients`
    (default :math:`l_{max} = 2 N_{side}`). A rotation-equivariant operator has
    :math:`R_{lm}` independent of ``m``, so :math:`\epsilon = 0`; the spread over ``m``
    is what makes a polynomial filter respond differently to the same pattern turned.
    (Defferrard et al. 2020 measure the related equivariance error
    :math:`\lVert R L f - L R f\rVert^2 / \lVert L f\rVert^2` over random rotations;
    this figure needs no rotation of sampled maps and is deterministic.)
    ``l = 0`` is left out: one harmonic, no spread.

    Measured (8-neighbour graph, default ``lmax = 2 nside``; in percent):

    =====  ==============  ==========  ====================
    nside  Laplacian       ``"mean"``  ``"deepsphere2020"``
    =====  ==============  ==========  ====================
    8      combinatorial   18.9        5.8
    8      normalized      18.6        4.7
    16     combinatorial   19.5        6.9
    16     normalized      19.7        5.7
    =====  ==============  ==========  ====================

    With the ``"mean"`` rule the worst degree is ``l = 2``; with the 2020 widths the
    spread is 3 to 7 % for every ``l <= 2 nside`` and grows towards ``l = 3 nside``,
    where the sampling, not the weights, limits it (12 % at ``l = 3 nside - 1``).

    >>> [round(isotropy_error(4, "normalized", width), 3) for width in ("mean", "deepsphere2020")]
    [0.135, 0.075]
    """
    quotients = harmonic_rayleigh_quotients(nside, kind, kernel_width, lmax)
    spreads = [(q.max() - q.min()) / q.mean() for q in quotients[1:]]
    return float(max(spreads, default=0.0))


def clear_caches() -> None:
    """Drop every cached table, Laplacian and eigenvalue, and the shared device tables (e.g. to free GPU memory)."""
    for function in (
        face_nest_index,
        neighbour_table,
        _stencil_arrays,
        _laplacian,
        _lambda_max,
        _real_harmonics,
    ):
        function.cache_clear()
    TABLES.clear()
