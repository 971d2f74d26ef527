r"""Spherical effective receptive fields: the ERF map of one output pixel, its radius and its lean.

=========================  =========================================================================
name                       what it measures
=========================  =========================================================================
:func:`spherical_erf`      :math:`|\partial y(p_0) / \partial x|` as a map on the sphere (Luo et al. 2016)
:func:`geodesic_radius`    the RMS geodesic distance of a map's mass from a point
:func:`centroid_offset`    how far a map's centroid lies from a point (an ERF cut by a border leans)
:func:`erf_radii`          ERF radius and offset at the grid's points of interest (equator, pole, seam)
=========================  =========================================================================

Helpers: :func:`nearest_pixel`, :func:`pixel_areas`. Everything here is also importable
from :mod:`geoconv.probes.sphere`.

Examples
--------
>>> import math, geoconv
>>> conv = geoconv.build_op("conv", 1, 1, grid="healpix", kernel_size=3)
>>> erf = spherical_erf(conv, "healpix", 4, (math.pi / 2, math.pi), inputs=2)
>>> erf.shape, int((erf > 0).sum())   # a 3x3 kernel: 9 input pixels
(torch.Size([12, 4, 4]), 9)
"""

from __future__ import annotations

import math  # noqa: F401 (the examples in the docstrings use it)
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids.sphere import POINTS_OF_INTEREST, SphericalGrid
from geoconv.probes._planar import evaluating
from geoconv.probes._sphere_common import (
    Centre,
    Resolution,
    _channels,
    _check_centre,
    _check_model,
    _check_output,
    _device_dtype,
    _grid,
    _noise,
    _resolution,
)

__all__ = [
    "ERF_CENTRES",
    "centroid_offset",
    "erf_radii",
    "geodesic_radius",
    "nearest_pixel",
    "pixel_areas",
    "spherical_erf",
]

ERF_CENTRES: dict[str, tuple[float, float]] = POINTS_OF_INTEREST
"""The points :func:`erf_radii` measures at by default (the built-in grids' points of interest).

Each grid names its own with :meth:`~geoconv.grids.sphere.SphericalGrid.points_of_interest`;
this is the built-ins' answer, :data:`geoconv.grids.sphere.POINTS_OF_INTEREST`.
"""


def nearest_pixel(grid: str | SphericalGrid, size: Resolution, centre: Centre) -> tuple[int, np.ndarray]:
    """The pixel whose centre is nearest to ``centre``: its flat index in the grid's layout and its unit vector.

    Ties (e.g. every pixel of an equirect row is as near to the pole) go to the lowest index.

    Parameters
    ----------
    grid : str or SphericalGrid
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin registers.
    size : int or (int, int)
        The resolution.
    centre : array_like
        A unit vector ``(x, y, z)`` or ``(colatitude, longitude)`` in radians.

    Returns
    -------
    (int, numpy.ndarray)
        The index into the flattened spatial dims (``(H, W)``, ``(6, F, F)``, ``(12, n, n)``)
        and the pixel centre ``(3,)``.

    Examples
    --------
    >>> index, vector = nearest_pixel("equirect", 4, (math.pi / 2, math.pi))
    >>> divmod(index, 8), vector.round(3)
    ((1, 4), array([-0.924,  0.   ,  0.383]))
    """
    grid = _grid(grid, "nearest_pixel")
    resolution = _resolution(grid, size)
    return grid.nearest_pixel(resolution, _check_centre(centre))


def _erf_maps(
    model: nn.Module,
    grid: SphericalGrid,
    resolution: Resolution,
    centres: list[np.ndarray],
    inputs: int,
    channels: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """ERF maps ``(len(centres), *spatial)`` (CPU, float64) and the output pixel centres they belong to."""
    device, dtype = _device_dtype(model)
    x = _noise((inputs, channels, *grid.signal_shape(resolution)), generator, device, dtype).requires_grad_(True)
    maps, pixels = [], []
    with torch.enable_grad(), evaluating(model):
        y = _check_output(grid, model(x), "spherical_erf")
        out_resolution = grid.resolution_of(y)
        y = y.flatten(2)  # (B, C_out, P)
        batch_index = torch.arange(inputs, device=device)
        # Sample b differentiates output channel b mod C_out, so one backward pass averages
        # |dy_c / dx| over channels as well as over inputs (the sum over channels could cancel).
        channel_index = batch_index % y.shape[1]
        for point in centres:
            index, pixel = nearest_pixel(grid, out_resolution, point)
            seed = torch.zeros_like(y)
            seed[batch_index, channel_index, index] = 1
            (grad,) = torch.autograd.grad(y, x, seed, retain_graph=True, allow_unused=True)
            maps.append(torch.zeros_like(x[0, 0]) if grad is None else grad.abs().mean(dim=(0, 1)))
            pixels.append(pixel)
    return torch.stack(maps).detach().to(device="cpu", dtype=torch.float64), pixels


def spherical_erf(
    model: nn.Module,
    grid: str | SphericalGrid,
    size: Resolution,
    centre: Centre,
    *,
    inputs: int = 16,
    channels: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The effective receptive field (Luo et al. 2016) of one output pixel, as a map on the sphere.

    .. math::

        \mathrm{ERF}(p) = \frac{1}{B\,C_\text{in}} \sum_{b=1}^{B} \sum_{c=1}^{C_\text{in}}
        \left| \frac{\partial y_{b,\,c_b}(p_0)}{\partial x_{b,c}(p)} \right|,
        \qquad c_b = b \bmod C_\text{out},

    over ``inputs`` standard-normal inputs :math:`x_b`, for the output pixel :math:`p_0`
    nearest to ``centre`` (:func:`nearest_pixel` on the output grid). Each sample
    differentiates one output channel, so a single backward pass averages over output
    channels too. The map is a mass per input pixel: a convolution sums over pixels, so
    :math:`\partial y / \partial x(p)` already carries the pixel's area (see
    :func:`geodesic_radius`). Average over initialisations by calling it for several models.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``grid.shape(B, channels, size)`` to a signal on the same grid (any resolution).
        Parameter gradients are not touched.
    grid : str or SphericalGrid
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin registers.
    size : int or (int, int)
        The input resolution.
    centre : array_like
        A unit vector ``(x, y, z)`` or ``(colatitude, longitude)`` in radians.
    inputs : int
        Random inputs to average over (at least ``C_out`` to see every output channel).
    channels : int, optional
        Input channels; by default inferred from the model's first ``in_channels``.
    generator : torch.Generator, optional
        A CPU generator for reproducible inputs (drawn on the CPU, moved once).

    Returns
    -------
    torch.Tensor
        The map in the input grid's spatial layout, ``(H, W)``, ``(6, F, F)`` or
        ``(12, n, n)``; float64 on the CPU.

    Examples
    --------
    >>> import geoconv
    >>> conv = geoconv.build_op("conv", 1, 1, grid="equirect", kernel_size=3)
    >>> erf = spherical_erf(conv, "equirect", 8, (math.pi / 2, math.pi), inputs=2)
    >>> erf.shape, int((erf > 0).sum())   # a 3x3 kernel: 9 input pixels
    (torch.Size([8, 16]), 9)
    """
    model = _check_model(model)
    grid = _grid(grid, "spherical_erf")
    resolution = _resolution(grid, size)
    point = _check_centre(centre)
    inputs = check_int("inputs", inputs, minimum=1)
    channels = _channels(model, channels)
    maps, _ = _erf_maps(model, grid, resolution, [point], inputs, channels, generator)
    return maps[0]


def pixel_areas(grid: str | SphericalGrid, size: Resolution) -> np.ndarray:
    r"""The solid angle of every pixel (steradians, float64), in the grid's spatial layout; they sum to :math:`4\pi`.

    The grid's :meth:`~geoconv.grids.sphere.SphericalGrid.pixel_areas`:

    - equirect: :math:`(\cos\theta_i^- - \cos\theta_i^+)\,2\pi/W` for row :math:`i` spanning
      :math:`[\theta_i^-, \theta_i^+] = [i, i+1]\,\pi/H`;
    - cube map: the solid angle of the pixel's square on the face's tangent plane,
      from :math:`\Omega([0,a]\times[0,b]) = \arctan\big(ab / \sqrt{1 + a^2 + b^2}\big)` by
      inclusion-exclusion;
    - HEALPix: :math:`4\pi / (12\,n^2)` (equal areas).

    Examples
    --------
    >>> [round(float(pixel_areas(g, 4).sum() / np.pi), 12) for g in ("equirect", "cubemap", "healpix")]
    [4.0, 4.0, 4.0]
    """
    grid = _grid(grid, "pixel_areas")
    return grid.pixel_areas(_resolution(grid, size))


def geodesic_radius(
    erf_map: torch.Tensor | np.ndarray, grid: str | SphericalGrid, size: Resolution, centre: Centre
) -> float:
    r"""The RMS geodesic distance (radians) of a map's mass from a point on the sphere.

    .. math::

        r = \sqrt{\frac{\sum_p w_p\, d(c_p, c)^2}{\sum_p w_p}}, \qquad
        d(u, v) = \operatorname{atan2}\big(\|u \times v\|,\ u \cdot v\big),

    with :math:`w_p \ge 0` the map's value at pixel :math:`p` taken as the mass of the pixel
    (an ERF is one: see :func:`spherical_erf`); for a density, multiply by
    :func:`pixel_areas` first. A delta at ``centre`` has radius 0; a uniform density on a cap
    of angular radius :math:`\alpha` has
    :math:`r^2 = \big(2 - 2\cos\alpha - 2\alpha\sin\alpha + \alpha^2\cos\alpha\big) / (\cos\alpha - 1)`.

    Parameters
    ----------
    erf_map : torch.Tensor or numpy.ndarray
        Non-negative, in the grid's spatial layout at ``size``: ``(H, W)``, ``(6, F, F)``, ``(12, n, n)``.
    grid : str or SphericalGrid
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin registers.
    size : int or (int, int)
        The map's resolution.
    centre : array_like
        A unit vector ``(x, y, z)`` or ``(colatitude, longitude)`` in radians.

    Examples
    --------
    >>> m = np.zeros((4, 8)); m[1, 2] = m[2, 2] = 1.0    # two pixels, each pi / 8 from the equator
    >>> round(geodesic_radius(m, "equirect", 4, (math.pi / 2, math.pi / 2)) * 8 / math.pi, 12)
    1.0
    """
    grid = _grid(grid, "geodesic_radius")
    weights, vectors, point = _mass(erf_map, grid, size, centre, "erf_map")
    distance = np.arctan2(np.linalg.norm(np.cross(vectors, point), axis=-1), vectors @ point)
    return float(np.sqrt((weights * distance**2).sum() / weights.sum()))


def _mass(
    values: torch.Tensor | np.ndarray, grid: SphericalGrid, size: Resolution, centre: Centre, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A checked map's weights ``(P,)``, the pixel centres ``(P, 3)`` and the centre ``(3,)``."""
    resolution = _resolution(grid, size)
    point = _check_centre(centre)
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    weights = np.asarray(values, dtype=np.float64)
    expected = grid.signal_shape(resolution)
    if weights.shape != expected:
        raise ShapeError(
            f"{name} must have the spatial shape {expected} of grid {grid.name!r} at size {size!r}, "
            f"got shape {weights.shape}"
        )
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ParameterError(f"{name} must be finite and non-negative (a mass per pixel)")
    if weights.sum() <= 0:
        raise ParameterError(f"{name} has no mass (all zeros): its radius and centroid are undefined")
    return weights.reshape(-1), grid.vectors(resolution).reshape(-1, 3), point


def centroid_offset(
    erf_map: torch.Tensor | np.ndarray, grid: str | SphericalGrid, size: Resolution, centre: Centre
) -> float:
    r"""The geodesic distance (radians) from a point to the centroid of a map's mass.

    .. math::

        \bar v = \frac{\sum_p w_p\, c_p}{\|\sum_p w_p\, c_p\|}, \qquad
        o = d(\bar v, c) = \operatorname{atan2}\big(\|\bar v \times c\|,\ \bar v \cdot c\big),

    the extrinsic mean of the pixel centres :math:`c_p` weighted by the mass :math:`w_p`
    (as in :func:`geodesic_radius`). An ERF centred on its output pixel has offset about 0;
    an ERF cut by a border that is not one on the sphere (zero padding at the equirect seam,
    or a padding that stops at the pole) leans away from the cut, and its offset is a
    sizeable fraction of its radius. (The radius alone does not show a cut: a symmetric
    ERF cut in half keeps about the same RMS distance from its centre.)

    Parameters
    ----------
    erf_map : torch.Tensor or numpy.ndarray
        Non-negative, in the grid's spatial layout at ``size``.
    grid : str or SphericalGrid
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin registers.
    size : int or (int, int)
        The map's resolution.
    centre : array_like
        A unit vector ``(x, y, z)`` or ``(colatitude, longitude)`` in radians.

    Examples
    --------
    >>> m = np.zeros((4, 8)); m[1, 2] = m[2, 2] = 1.0    # symmetric about the equator
    >>> round(centroid_offset(m, "equirect", 4, (math.pi / 2, math.pi / 2)), 12)
    0.0
    >>> m[2, 2] = 0.0                                      # only the northern pixel is left
    >>> round(centroid_offset(m, "equirect", 4, (math.pi / 2, math.pi / 2)) * 8 / math.pi, 12)
    1.0
    """
    grid = _grid(grid, "centroid_offset")
    weights, vectors, point = _mass(erf_map, grid, size, centre, "erf_map")
    mean = weights @ vectors
    return float(np.arctan2(np.linalg.norm(np.cross(mean, point)), mean @ point))


def erf_radii(
    model: nn.Module,
    grid: str | SphericalGrid,
    size: Resolution,
    *,
    inputs: int = 16,
    channels: int | None = None,
    centres: Mapping[str, Centre] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """The ERF's geodesic radius and centroid offset at the grid's points of interest.

    At the output pixels nearest to the points the grid names
    (:meth:`~geoconv.grids.sphere.SphericalGrid.points_of_interest`; on every built-in grid
    :data:`ERF_CENTRES`, colatitude and longitude): ``equator`` (90°, 180°), ``pole``
    (1°, 180°) and ``seam`` (90°, 0°), where equirect's longitude wraps. For each, the
    radius (:func:`geodesic_radius`) and the offset of the ERF's centroid
    (:func:`centroid_offset`), both in radians and measured from the output pixel's
    centre; every ERF uses the same random inputs.

    What they show, on equirect: a padding that is stationary along longitude (``sphere``,
    ``lon_circular``) gives the same ERF on the seam as on the equator (exactly, up to a
    roll, for a linear network); ``zeros`` cuts the seam ERF, which then leans away from
    the seam (``seam_offset`` several times ``equator_offset``; the radius changes by a few
    percent only, since a cut ERF keeps much of its RMS distance). At the pole, ``sphere``
    padding lets the ERF cross to the other side (``pole_offset`` about 0) where
    ``lon_circular`` and ``zeros`` stop it (``pole_offset`` a large fraction of the radius). On the cube
    map the three default points are face centres; pass ``centres`` (e.g. a cube vertex,
    ``(math.acos(3 ** -0.5), math.pi / 4)``) to probe edges and corners.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``grid.shape(B, channels, size)`` to a signal on the same grid.
    grid : str or SphericalGrid
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin registers.
    size : int or (int, int)
        The input resolution.
    inputs : int
        Random inputs to average over.
    channels : int, optional
        Input channels; by default inferred from the model's first ``in_channels``.
    centres : mapping of str to array_like, optional
        Named points (unit vectors or ``(colatitude, longitude)``), instead of the grid's own.
    generator : torch.Generator, optional
        A CPU generator for reproducible inputs.

    Returns
    -------
    dict of str to float
        ``{name: radius, f"{name}_offset": offset}`` for every point, in radians.

    Examples
    --------
    >>> import geoconv
    >>> conv = geoconv.build_op("conv", 1, 1, grid="equirect", kernel_size=3, bias=False)
    >>> radii = erf_radii(conv, "equirect", 8, inputs=1)
    >>> list(radii), abs(radii["seam"] - radii["equator"]) < 1e-12
    (['equator', 'equator_offset', 'pole', 'pole_offset', 'seam', 'seam_offset'], True)
    """
    model = _check_model(model)
    grid = _grid(grid, "erf_radii")
    resolution = _resolution(grid, size)
    inputs = check_int("inputs", inputs, minimum=1)
    channels = _channels(model, channels)
    if centres is None:
        centres = grid.points_of_interest()
    elif not isinstance(centres, Mapping) or not centres or not all(isinstance(k, str) for k in centres):
        raise ParameterError(f"centres must be a non-empty mapping of names to points, got {centres!r}")
    points = [_check_centre(point, f"centres[{name!r}]") for name, point in centres.items()]
    maps, pixels = _erf_maps(model, grid, resolution, points, inputs, channels, generator)
    radii = {}
    for name, erf, pixel in zip(centres, maps, pixels, strict=True):
        radii[name] = geodesic_radius(erf, grid, resolution, pixel)
        radii[f"{name}_offset"] = centroid_offset(erf, grid, resolution, pixel)
    return radii
