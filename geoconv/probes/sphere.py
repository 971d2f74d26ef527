r"""Probes on the sphere: equivariance under grid symmetries and rotations, and spherical receptive fields.

Every probe takes a model (a :class:`torch.nn.Module` mapping signals on a spherical grid to
signals on the same grid, or to a vector per sample for an invariance measurement), a grid
name and a resolution, and works on the model's device and dtype: inputs are built once
(exact band-limited fields on the CPU, or noise, drawn on the CPU when a seeded CPU
generator is given so that it is the same on every device), moved to the model in one
transfer, and the results come back once at the end. The model runs in eval
mode during a probe (so that batch statistics and dropout do not mix the samples) and its
modes are restored afterwards.

=========================  =========================================================================
name                       what it measures
=========================  =========================================================================
:func:`symmetry_error`     :math:`\|F(Tx) - T'F(x)\| / \|F(x)\|` under the grid's exact symmetries
:func:`rotation_error`     the same under Haar-random rotations, beside the identity's interpolation floor
:func:`spherical_erf`      :math:`|\partial y(p_0) / \partial x|` as a map on the sphere (Luo et al. 2016)
:func:`geodesic_radius`    the RMS geodesic distance of a map's mass from a point
:func:`centroid_offset`    how far a map's centroid lies from a point (an ERF cut by a border leans)
:func:`erf_radii`          ERF radius and offset at the grid's points of interest (equator, pole, seam)
:func:`plot_sphere_map`    a map as a figure: Mollweide (HEALPix, via healpy) or latitude-longitude
=========================  =========================================================================

Helpers: :func:`default_lmax`, :func:`nearest_pixel`, :func:`pixel_areas`, :class:`RotationResult`.

The receptive-field probes live in :mod:`geoconv.probes.sphere_erf` and the figure in
:mod:`geoconv.viz`; every name of the table is importable from here. Everything a probe
needs to know about a grid is a method of the grid
(:class:`~geoconv.grids.sphere.SphericalGrid`: ``default_lmax``, ``pole_turns``,
``turn_about_pole``, ``points_of_interest``, ``pixel_areas``, ...), so a spherical grid
registered by a plugin is probed like a built-in.

Examples
--------
>>> import torch, geoconv
>>> from geoconv.probes.sphere import symmetry_error
>>> net = geoconv.build_op("conv", 2, 3, grid="equirect", padding_mode="sphere")
>>> errors = symmetry_error(net, "equirect", 8, channels=2, generator=torch.Generator().manual_seed(0))
>>> sorted(errors), errors["max"] < 1e-5
(['max', 'roll_1', 'roll_half', 'roll_quarter'], True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids.fields import BandLimitedField, wigner_d
from geoconv.grids.rotation import random_rotation, rotate
from geoconv.grids.sphere import SphericalGrid
from geoconv.probes._planar import evaluating
from geoconv.probes._sphere_common import (
    Resolution,
    _channels,
    _check_model,
    _check_output,
    _device_dtype,
    _grid,
    _lmax,
    _on_grid,
    _resolution,
    _whole,
)
from geoconv.probes.sphere_erf import (
    ERF_CENTRES,
    centroid_offset,
    erf_radii,
    geodesic_radius,
    nearest_pixel,
    pixel_areas,
    spherical_erf,
)
from geoconv.viz import plot_sphere_map

__all__ = [
    "RotationResult",
    "ERF_CENTRES",
    "default_lmax",
    "erf_radii",
    "centroid_offset",
    "geodesic_radius",
    "nearest_pixel",
    "pixel_areas",
    "plot_sphere_map",
    "rotation_error",
    "spherical_erf",
    "symmetry_error",
]


def default_lmax(grid: str | SphericalGrid, size: Resolution) -> int:
    r"""The band limit of the probes' random fields: about eight pixels per wavelength at the equator.

    The grid's :meth:`~geoconv.grids.sphere.SphericalGrid.default_lmax`,

    .. math::

        L = \min\left(12,\ \max\left(1,\ \left\lfloor N_\text{eq} / 8 \right\rfloor\right)\right),

    with :math:`N_\text{eq}` the pixels around the equator (``min(2H, W)`` on equirect, ``4F``
    on the cube map, ``4 nside`` on HEALPix): a quarter of the grid's Nyquist limit, smooth
    enough that resampling a rotated signal costs a few percent (the interpolation floor
    of :func:`rotation_error` is 2-5 % at this band limit, and falls about 4x for every
    doubling of the resolution at a fixed :math:`L`). 12 is the largest degree of
    :class:`~geoconv.grids.fields.BandLimitedField`.

    Examples
    --------
    >>> default_lmax("equirect", 8), default_lmax("healpix", 8), default_lmax("cubemap", 64)
    (2, 4, 12)
    """
    grid = _grid(grid, "default_lmax")
    return grid.default_lmax(_resolution(grid, size))


# -- exact symmetries -------------------------------------------------------------------------


Action = Callable[[torch.Tensor], torch.Tensor]


def _pole_actions(
    grid: SphericalGrid, turns: int, out_turns: int | None, output_stride: object
) -> list[tuple[str, Action, Action]]:
    """Exact turns about the pole of the input and the matching turns of the output (none for invariance).

    ``turns`` and ``out_turns`` are the exact turns per revolution of the input and of the
    output (:meth:`SphericalGrid.pole_turns`: ``W`` on equirect, 4 on the cube and HEALPix).
    A grid with 4 gets its three quarter turns; one with more gets a turn of one output
    pixel and turns of about a quarter and a half revolution, each a whole number of
    output steps.
    """
    if out_turns is None:
        ratio_num, ratio_den = 1, 1  # invariance: the output turn is never used
    else:
        if output_stride is not None:
            stride = check_int("output_stride", output_stride, minimum=1)
            if turns % stride or turns // stride != out_turns:
                raise ParameterError(
                    f"output_stride={stride} does not match the model: an input with {turns} exact turns about the "
                    f"pole (W={turns} on equirect) gave an output with {out_turns} "
                    f"(expected {turns} / output_stride = {turns / stride:g})"
                )
        ratio_num, ratio_den = out_turns // math.gcd(out_turns, turns), turns // math.gcd(out_turns, turns)
    # The smallest input turn whose output turn is a whole number of output steps.
    unit = ratio_den
    if unit > turns // 2:
        raise ParameterError(
            f"the model's total stride ({unit} input pixels per output pixel) leaves no exact turn about the pole of "
            f"an input with {turns} of them (W={turns} on equirect) that maps to whole output pixels"
        )
    if turns == 4:
        named = [(f"quarter_turn_{k}", k) for k in (1, 2, 3) if k % unit == 0]
    else:
        named = [("roll_1", unit), ("roll_quarter", turns // 4), ("roll_half", turns // 2)]
    actions = []
    for name, nominal in named:
        steps = max(unit, nominal // unit * unit)
        out_steps = steps * ratio_num // ratio_den

        def act_in(t: torch.Tensor, steps: int = steps) -> torch.Tensor:
            return grid.turn_about_pole(t, steps)

        def act_out(t: torch.Tensor, steps: int = out_steps) -> torch.Tensor:
            return t if out_turns is None else grid.turn_about_pole(t, steps)

        actions.append((name, act_in, act_out))
    return actions


def symmetry_error(
    model: nn.Module,
    grid: str | SphericalGrid,
    size: Resolution,
    *,
    channels: int | None = None,
    lmax: int | None = None,
    batch: int = 2,
    output_stride: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    r"""Relative equivariance error under the grid's exact symmetries, on band-limited random inputs.

    .. math::

        e_T = \frac{\| F(T x) - T' F(x) \|}{\| F(x) \|},

    the norms over the whole batch, with :math:`T` a pixel permutation that is an exact
    rotation of the grid about the pole (the grid's
    :meth:`~geoconv.grids.sphere.SphericalGrid.turn_about_pole`) and :math:`T'` the same
    rotation on the output grid:

    - equirect: longitude rolls (:math:`R_z(2\pi s / W)`) by one output pixel (``roll_1``:
      ``output_stride`` input pixels), about ``W/4`` (``roll_quarter``) and ``W/2``
      (``roll_half``) input pixels, each rounded down to a multiple of the stride; the
      output rolls by the shift divided by the stride;
    - cubemap and HEALPix: quarter turns about the pole, :math:`k = 1, 2, 3` (``quarter_turn_k``).

    A model whose output is not in the grid's layout (a classifier's ``(B, K)``) is measured
    for invariance: :math:`T' = \mathrm{id}`. On the cube map the quarter turn rotates the
    polar faces in their own plane, so a planar convolution is exactly equivariant only
    with kernels invariant under ``rot90``. On HEALPix any kernel is, with any padding
    (every face maps onto a face in the same frame); on equirect any kernel is, with
    ``sphere`` or ``lon_circular`` padding.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``grid.shape(B, channels, size)`` to the same grid (any resolution) or to ``(B, K)``.
    grid : str or SphericalGrid
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin registers.
    size : int or (int, int)
        The input resolution: ``H`` (or ``(H, W)``) on equirect, the face side on the cube, nside on HEALPix.
    channels : int, optional
        Input channels; by default the ``in_channels`` of the model's first module that has one.
    lmax : int, optional
        The band limit of the random inputs (:class:`~geoconv.grids.fields.BandLimitedField`,
        white spectrum); default :func:`default_lmax`.
    batch : int
        Random inputs per measurement.
    output_stride : int, optional
        Input pixels per output pixel along longitude (equirect); inferred from the output
        width when omitted, and checked against it when given.
    generator : torch.Generator, optional
        A CPU generator for reproducible inputs.

    Returns
    -------
    dict of str to float
        One error per symmetry (``roll_1``, ``roll_quarter``, ``roll_half`` or
        ``quarter_turn_1..3``) and their ``max``.

    Examples
    --------
    >>> import geoconv
    >>> net = geoconv.build_op("conv", 1, 2, grid="healpix", kernel_size=3)
    >>> errors = symmetry_error(net, "healpix", 4, generator=torch.Generator().manual_seed(0))
    >>> list(errors), errors["max"] < 1e-5
    (['quarter_turn_1', 'quarter_turn_2', 'quarter_turn_3', 'max'], True)
    """
    model = _check_model(model)
    grid = _grid(grid, "symmetry_error")
    resolution = _resolution(grid, size)
    channels = _channels(model, channels)
    lmax = _lmax(grid, resolution, lmax)
    batch = check_int("batch", batch, minimum=1)
    if output_stride is not None:
        check_int("output_stride", output_stride, minimum=1)
    device, dtype = _device_dtype(model)
    field = BandLimitedField.random(lmax, batch=batch, channels=channels, generator=generator)
    x = field.sample(grid, resolution).to(device=device, dtype=dtype)
    with torch.no_grad(), evaluating(model):
        y = model(x)
        if not isinstance(y, torch.Tensor):
            raise ShapeError(f"symmetry_error needs a model that returns a tensor, got {type(y).__name__}")
        invariant = not _on_grid(grid, y)
        if invariant and y.dim() != 2:
            raise ShapeError(
                f"the model's output must be on grid {grid.name!r} ({grid.layout}) or one vector per sample "
                f"(B, K), got shape {tuple(y.shape)}"
            )
        turns = grid.pole_turns(grid.resolution_of(x))
        if turns == 0:
            raise ParameterError(
                f"symmetry_error needs exact rotations about the pole, and grid {grid.name!r} declares none "
                "(pole_turns is 0); measure it with rotation_error"
            )
        out_turns = None if invariant else grid.pole_turns(grid.resolution_of(y))
        actions = _pole_actions(grid, turns, out_turns, output_stride)
        # One forward pass for every transformed input: no host round trip between them.
        moved = model(torch.cat([act_in(x) for _, act_in, _ in actions])).split(batch)
        errors = torch.stack([_whole(m - act_out(y), y) for m, (_, _, act_out) in zip(moved, actions, strict=True)])
    values = errors.tolist()
    result = {name: value for (name, _, _), value in zip(actions, values, strict=True)}
    result["max"] = max(values)
    return result


# -- random rotations -------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationResult:
    r"""The equivariance error under random rotations, beside the interpolation floor.

    Attributes
    ----------
    error : float
        The mean over rotations of :math:`\|F(Rx) - \mathcal I_R F(x)\| / \|F(x)\|`.
    floor : float
        The same for the identity operator on the output grid: what the resampling
        :math:`\mathcal I_R` alone costs. ``error`` well above ``floor`` is the operator's own.
    per_rotation : torch.Tensor
        ``(rotations,)`` float64 on the CPU: the error of each rotation.
    floor_per_rotation : torch.Tensor
        ``(rotations,)`` float64 on the CPU: the floor of each rotation.
    matrices : torch.Tensor
        ``(rotations, 3, 3)`` float64 on the CPU: the rotations :math:`R_r`, to reproduce a measurement.
    lmax : int
        The band limit of the random fields.
    """

    error: float
    floor: float
    per_rotation: torch.Tensor
    floor_per_rotation: torch.Tensor
    matrices: torch.Tensor
    lmax: int

    @property
    def excess(self) -> float:
        """``error / floor``: about 1 for an operator as equivariant as the grid allows (``inf`` for a zero floor)."""
        return self.error / self.floor if self.floor > 0 else math.inf


def rotation_error(
    model: nn.Module,
    grid: str | SphericalGrid,
    size: Resolution,
    *,
    rotations: int = 8,
    channels: int | None = None,
    lmax: int | None = None,
    generator: torch.Generator | None = None,
) -> RotationResult:
    r"""Equivariance error under Haar-random rotations of band-limited fields, with the interpolation floor.

    For each rotation :math:`R_r` (Haar-uniform on SO(3)) and its own random field
    :math:`f_r` of band limit :math:`L`:

    .. math::

        x_r = f_r|_\text{grid}, \qquad
        (R x)_r = (R_r f_r)|_\text{grid} \ \text{(exact, by Wigner D)}, \qquad
        e_r = \frac{\| F(Rx)_r - \mathcal I_{R_r}[F(x)_r] \|}{\| F(x)_r \|},

    where :math:`\mathcal I_R` rotates a signal on the output grid by resampling
    (:func:`geoconv.grids.rotate` with ``method="resample"``: bilinear interpolation at
    :math:`R^\top c_p`). The floor :math:`e^0_r` is the same measurement for the identity
    operator on the output grid (the fields sampled at the output resolution, which are the
    input samples when the model keeps the resolution): even a perfectly equivariant
    operator shows it, because :math:`\mathcal I_R` interpolates. With ``F`` the identity,
    ``error == floor`` exactly.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``grid.shape(B, channels, size)`` to a signal on the same grid (any resolution).
    grid : str or SphericalGrid
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin registers.
    size : int or (int, int)
        The input resolution.
    rotations : int
        How many random rotations (and fields); all go through the model in one batch of
        ``2 * rotations``.
    channels : int, optional
        Input channels; by default inferred from the model's first ``in_channels``.
    lmax : int, optional
        The fields' band limit (white spectrum); default :func:`default_lmax`.
    generator : torch.Generator, optional
        A CPU generator for the fields and the rotations.

    Returns
    -------
    RotationResult
        ``error`` and ``floor`` (means over rotations), and both per rotation.

    Examples
    --------
    >>> result = rotation_error(torch.nn.Identity(), "equirect", 8, channels=1,
    ...                         generator=torch.Generator().manual_seed(0))
    >>> result.error == result.floor, 0 < result.floor < 0.5
    (True, True)
    """
    model = _check_model(model)
    grid = _grid(grid, "rotation_error")
    resolution = _resolution(grid, size)
    rotations = check_int("rotations", rotations, minimum=1)
    channels = _channels(model, channels)
    lmax = _lmax(grid, resolution, lmax)
    device, dtype = _device_dtype(model)
    field = BandLimitedField.random(lmax, batch=rotations, channels=channels, generator=generator)
    matrices = torch.stack([random_rotation(generator) for _ in range(rotations)])
    # Field r is rotated by R_r: a = D(R_r) a per sample (BandLimitedField.rotate takes one R).
    rotated = BandLimitedField(
        torch.cat([field.coefficients[r : r + 1] @ wigner_d(lmax, matrices[r]).T for r in range(rotations)]), lmax
    )
    x = torch.cat([field.sample(grid, resolution), rotated.sample(grid, resolution)]).to(device=device, dtype=dtype)
    with torch.no_grad(), evaluating(model):
        y = _check_output(grid, model(x), "rotation_error")
        plain, moved = y.split(rotations)
        out_resolution = grid.resolution_of(y)
        if out_resolution == grid.resolution_of(x):
            reference, reference_moved = x.split(rotations)
        else:
            reference = field.sample(grid, out_resolution).to(device=device, dtype=dtype)
            reference_moved = rotated.sample(grid, out_resolution).to(device=device, dtype=dtype)
        errors, floors = [], []
        for r in range(rotations):
            sample = slice(r, r + 1)
            resampled = rotate(plain[sample], grid, matrices[r], method="resample")
            errors.append(_whole(moved[sample] - resampled, plain[sample]))
            resampled = rotate(reference[sample], grid, matrices[r], method="resample")
            floors.append(_whole(reference_moved[sample] - resampled, reference[sample]))
        both = torch.stack([torch.stack(errors), torch.stack(floors)]).to(device="cpu", dtype=torch.float64)
    return RotationResult(
        error=float(both[0].mean()),
        floor=float(both[1].mean()),
        per_rotation=both[0],
        floor_per_rotation=both[1],
        matrices=matrices,
        lmax=lmax,
    )
