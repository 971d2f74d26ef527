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
:func:`erf_radii`          ERF radius and offset at the equator, near a pole and on the equirect seam
:func:`plot_sphere_map`    a map as a figure: Mollweide (HEALPix, via healpy) or latitude-longitude
=========================  =========================================================================

Helpers: :func:`default_lmax`, :func:`nearest_pixel`, :func:`pixel_areas`, :class:`RotationResult`.

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

import contextlib
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids.conversion import check_resolution, convert, resolution_of, spherical_grid
from geoconv.grids.fields import MAX_DEGREE, BandLimitedField, check_lmax, wigner_d
from geoconv.grids.rotation import random_rotation, rotate
from geoconv.grids.sphere import SphericalGrid, angles_to_vectors

__all__ = [
    "RotationResult",
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

Resolution = int | tuple[int, int]
"""A grid resolution: ``H`` or ``(H, W)`` on equirect, the face side on the cube, nside on HEALPix."""

Centre = Sequence[float] | np.ndarray | torch.Tensor
"""A point on the sphere: a unit vector ``(x, y, z)`` or ``(colatitude, longitude)`` in radians."""

UNIT_TOLERANCE = 1e-6
"""How far from 1 the norm of a centre given as a vector may be."""

ERF_CENTRES: dict[str, tuple[float, float]] = {
    "equator": (math.pi / 2, math.pi),
    # Just off the pole, towards longitude 180°: at the pole itself every pixel of the first
    # equirect row is equally near and the tie would land on the seam (longitude 0).
    "pole": (math.radians(1.0), math.pi),
    "seam": (math.pi / 2, 0.0),
}
"""``(colatitude, longitude)`` of the points :func:`erf_radii` measures at."""


# -- validation and plumbing ------------------------------------------------------------------


def _grid(grid: object, what: str) -> SphericalGrid:
    # get_grid names the parameter and suggests the closest grids for an unknown name;
    # spherical_grid refuses the plane.
    return spherical_grid(grid, what)  # type: ignore[arg-type]


def _resolution(grid: SphericalGrid, size: object) -> Resolution:
    """``size`` checked for ``grid``; every message names the probes' parameter ``size``."""
    try:
        return check_resolution(grid, size)
    except GeoconvError as err:
        if "size" in str(err):
            raise
        # HEALPix says "nside must be a power of two": say which argument that was.
        raise type(err)(f"size for grid {grid.name!r}: {err}") from None


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of the model's first floating tensor (CPU and the default dtype if none)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device, torch.get_default_dtype()
    return torch.device("cpu"), torch.get_default_dtype()


def _channels(model: nn.Module, channels: object) -> int:
    """``channels``, or the ``in_channels`` of the model's first module that declares one."""
    if channels is not None:
        return check_int("channels", channels, minimum=1)
    for module in model.modules():
        value = getattr(module, "in_channels", None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    raise ParameterError(
        "channels: the model declares no in_channels to infer the input channels from; pass channels=<int>"
    )


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration of a probe, restoring every submodule's own mode afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def default_lmax(grid: str | SphericalGrid, size: Resolution) -> int:
    r"""The band limit of the probes' random fields: about eight pixels per wavelength at the equator.

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
    resolution = _resolution(grid, size)
    if grid.name == "equirect":
        height, width = resolution  # type: ignore[misc]
        equator = min(2 * height, width)
    else:
        equator = 4 * int(resolution)  # type: ignore[arg-type]
    return min(MAX_DEGREE, max(1, equator // 8))


def _lmax(grid: SphericalGrid, resolution: Resolution, lmax: object) -> int:
    return default_lmax(grid, resolution) if lmax is None else check_lmax(lmax)


def _on_grid(grid: SphericalGrid, y: torch.Tensor) -> bool:
    """Whether ``y`` is in the grid's layout (else it is taken as one vector per sample)."""
    try:
        grid.check(y, "the model's output")
    except ShapeError:
        return False
    return True


def _check_output(grid: SphericalGrid, y: object, what: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise ShapeError(f"{what} needs a model that returns a tensor, got {type(y).__name__}")
    return grid.check(y, f"the model's output (for {what})")


def _whole(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``||a|| / ||b||`` over the whole tensors, as a 0-d tensor (no host sync); 0 / 0 is 0."""
    bottom = denominator.norm()
    return numerator.norm() / bottom.clamp_min(torch.finfo(bottom.dtype).tiny)


# -- exact symmetries -------------------------------------------------------------------------


Action = Callable[[torch.Tensor], torch.Tensor]


def _roll_actions(width: int, output: torch.Tensor | None, output_stride: object) -> list[tuple[str, Action, Action]]:
    """Longitude rolls of the input and the matching rolls of an equirect output (or none for invariance)."""
    if output is None:
        ratio_num, ratio_den = 1, 1  # invariance: the output roll is never used
    else:
        out_width = int(output.shape[-1])
        if output_stride is not None:
            stride = check_int("output_stride", output_stride, minimum=1)
            if width % stride or width // stride != out_width:
                raise ParameterError(
                    f"output_stride={stride} does not match the model: an input of width W={width} gave an "
                    f"output of width {out_width} (expected W / output_stride = {width / stride:g})"
                )
        ratio_num, ratio_den = out_width // math.gcd(out_width, width), width // math.gcd(out_width, width)
    # The smallest input roll whose output roll is a whole number of output pixels.
    unit = ratio_den
    if unit > width // 2:
        raise ParameterError(
            f"the model's total stride ({unit} input pixels per output pixel) leaves no longitude roll of an "
            f"input of width {width} that maps to whole output pixels"
        )
    actions = []
    for name, nominal in (("roll_1", unit), ("roll_quarter", width // 4), ("roll_half", width // 2)):
        shift = max(unit, nominal // unit * unit)
        out_shift = shift * ratio_num // ratio_den

        def act_in(t: torch.Tensor, shift: int = shift) -> torch.Tensor:
            return torch.roll(t, shift, dims=-1)

        def act_out(t: torch.Tensor, shift: int = out_shift) -> torch.Tensor:
            return t if output is None else torch.roll(t, shift, dims=-1)

        actions.append((name, act_in, act_out))
    return actions


def _turn_actions(grid: SphericalGrid, invariant: bool) -> list[tuple[str, Action, Action]]:
    actions = []
    for k in (1, 2, 3):

        def act(t: torch.Tensor, k: int = k) -> torch.Tensor:
            return grid.quarter_turn(t, k)  # type: ignore[attr-defined]

        actions.append((f"quarter_turn_{k}", act, (lambda t: t) if invariant else act))
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
    rotation of the grid and :math:`T'` the same rotation on the output grid:

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
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
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
    with torch.no_grad(), _evaluating(model):
        y = model(x)
        if not isinstance(y, torch.Tensor):
            raise ShapeError(f"symmetry_error needs a model that returns a tensor, got {type(y).__name__}")
        invariant = not _on_grid(grid, y)
        if invariant and y.dim() != 2:
            raise ShapeError(
                f"the model's output must be on grid {grid.name!r} ({grid.layout}) or one vector per sample "
                f"(B, K), got shape {tuple(y.shape)}"
            )
        if grid.name == "equirect":
            actions = _roll_actions(int(x.shape[-1]), None if invariant else y, output_stride)
        else:
            actions = _turn_actions(grid, invariant)
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
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
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
    with torch.no_grad(), _evaluating(model):
        y = _check_output(grid, model(x), "rotation_error")
        plain, moved = y.split(rotations)
        out_resolution = resolution_of(grid, y)
        if out_resolution == resolution_of(grid, x):
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


# -- receptive fields -------------------------------------------------------------------------


def _check_centre(centre: object, name: str = "centre") -> np.ndarray:
    """A unit vector ``(3,)`` from a unit vector or ``(colat, lon)`` in radians."""
    if isinstance(centre, torch.Tensor):
        centre = centre.detach().to(device="cpu", dtype=torch.float64).numpy()
    try:
        values = np.asarray(centre, dtype=np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape not in ((2,), (3,)) or not np.isfinite(values).all():
        raise ParameterError(
            f"{name} must be a unit vector (x, y, z) or (colatitude, longitude) in radians, got {centre!r}"
        )
    if values.shape == (3,):
        norm = float(np.linalg.norm(values))
        if abs(norm - 1) > UNIT_TOLERANCE:
            raise ParameterError(
                f"{name} must be a unit vector (x, y, z) (norm 1 to {UNIT_TOLERANCE:g}) or (colatitude, longitude), "
                f"got a vector of norm {norm:.6g}"
            )
        return values / norm
    colat, lon = values
    if not 0 <= colat <= math.pi:
        raise ParameterError(f"{name} as (colatitude, longitude) must have a colatitude in [0, pi], got {colat:.6g}")
    return angles_to_vectors(colat, lon)


def nearest_pixel(grid: str | SphericalGrid, size: Resolution, centre: Centre) -> tuple[int, np.ndarray]:
    """The pixel whose centre is nearest to ``centre``: its flat index in the grid's layout and its unit vector.

    Ties (e.g. every pixel of an equirect row is as near to the pole) go to the lowest index.

    Parameters
    ----------
    grid : str or SphericalGrid
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
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
    point = _check_centre(centre)
    vectors = grid.vectors(resolution).reshape(-1, 3)
    index = int(np.argmax(vectors @ point))
    return index, vectors[index].copy()


def _noise(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    # A seeded CPU generator: drawn on the CPU in float64 (reproducible on any device), moved once.
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)


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
    x = _noise((inputs, channels, *_spatial_shape(grid, resolution)), generator, device, dtype).requires_grad_(True)
    maps, pixels = [], []
    with torch.enable_grad(), _evaluating(model):
        y = _check_output(grid, model(x), "spherical_erf")
        out_resolution = resolution_of(grid, y)
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


def _spatial_shape(grid: SphericalGrid, resolution: Resolution) -> tuple[int, ...]:
    if grid.name == "equirect":
        return tuple(resolution)  # type: ignore[arg-type]
    return tuple(grid.shape(1, 1, resolution)[2:])  # type: ignore[arg-type]


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
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
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
    resolution = _resolution(grid, size)
    if grid.name == "equirect":
        height, width = resolution  # type: ignore[misc]
        edges = np.cos(np.arange(height + 1) * (np.pi / height))
        return np.repeat(((edges[:-1] - edges[1:]) * (2 * np.pi / width))[:, None], width, axis=1)
    if grid.name == "healpix":
        return np.full((12, resolution, resolution), 4 * np.pi / (12 * resolution**2))  # type: ignore[operator]
    faces = int(resolution)  # type: ignore[arg-type]
    edges = np.linspace(-1.0, 1.0, faces + 1)
    a, b = edges[:, None], edges[None, :]
    corner = np.arctan(a * b / np.sqrt(1 + a * a + b * b))
    square = corner[1:, 1:] - corner[:-1, 1:] - corner[1:, :-1] + corner[:-1, :-1]
    # The same square on every face (rows and columns both span [-1, 1] on each).
    return np.broadcast_to(square, (6, faces, faces)).copy()


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
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
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
    expected = _spatial_shape(grid, resolution)
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

        ar v = rac{\sum_p w_p\, c_p}{\|\sum_p w_p\, c_p\|}, \qquad
        o = d(ar v, c) = \operatorname{atan2}ig(\|ar v 	imes c\|,\ ar v \cdot cig),

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
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
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
    """The ERF's geodesic radius and centroid offset at the equator, near a pole and on the equirect seam.

    At the output pixels nearest to the points of :data:`ERF_CENTRES` (colatitude,
    longitude): ``equator`` (90°, 180°), ``pole`` (1°, 180°) and ``seam`` (90°, 0°), where
    equirect's longitude wraps. For each, the radius (:func:`geodesic_radius`) and the
    offset of the ERF's centroid (:func:`centroid_offset`), both in radians and measured
    from the output pixel's centre; every ERF uses the same random inputs.

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
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
    size : int or (int, int)
        The input resolution.
    inputs : int
        Random inputs to average over.
    channels : int, optional
        Input channels; by default inferred from the model's first ``in_channels``.
    centres : mapping of str to array_like, optional
        Named points (unit vectors or ``(colatitude, longitude)``), instead of :data:`ERF_CENTRES`.
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
        centres = ERF_CENTRES
    elif not isinstance(centres, Mapping) or not centres or not all(isinstance(k, str) for k in centres):
        raise ParameterError(f"centres must be a non-empty mapping of names to points, got {centres!r}")
    points = [_check_centre(point, f"centres[{name!r}]") for name, point in centres.items()]
    maps, pixels = _erf_maps(model, grid, resolution, points, inputs, channels, generator)
    radii = {}
    for name, erf, pixel in zip(centres, maps, pixels, strict=True):
        radii[name] = geodesic_radius(erf, grid, resolution, pixel)
        radii[f"{name}_offset"] = centroid_offset(erf, grid, resolution, pixel)
    return radii


# -- figures ----------------------------------------------------------------------------------


def plot_sphere_map(
    values: torch.Tensor | np.ndarray,
    grid: str | SphericalGrid,
    size: Resolution,
    path: str | Path,
    title: str = "",
    *,
    cmap: str = "viridis",
) -> Path:
    """Save a map on the sphere as a PNG: Mollweide for HEALPix (healpy), latitude-longitude otherwise.

    HEALPix maps are drawn with healpy's Mollweide axes (``HpxMollweideAxes.projmap``, what
    ``healpy.mollview`` draws with) from the NESTED map (:func:`~geoconv.grids.healpix.faces_to_nest`),
    east to the right (``flip="geo"``). Equirect maps are an image with longitude 0°..360°
    across and latitude 90°..-90° down; cube maps are resampled to a ``2F x 4F`` equirect map
    first (:func:`geoconv.grids.convert`). Figures are matplotlib ``Figure`` objects rendered
    by Agg outside pyplot: nothing is shown, no global backend or pyplot state is touched,
    and nothing stays open.

    Parameters
    ----------
    values : torch.Tensor or numpy.ndarray
        The map in the grid's spatial layout at ``size``: ``(H, W)``, ``(6, F, F)``, ``(12, n, n)``.
    grid : str or SphericalGrid
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
    size : int or (int, int)
        The map's resolution.
    path : str or pathlib.Path
        Where to write the PNG (parent folders are created).
    title : str
        The figure's title.
    cmap : str
        A matplotlib colour map.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = plot_sphere_map(np.random.rand(12, 4, 4), "healpix", 4, Path(folder) / "map.png", "noise")
    ...     out.stat().st_size > 0
    True
    """
    grid = _grid(grid, "plot_sphere_map")
    resolution = _resolution(grid, size)
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    values = np.asarray(values, dtype=np.float64)
    expected = _spatial_shape(grid, resolution)
    if values.shape != expected:
        raise ShapeError(
            f"values must have the spatial shape {expected} of grid {grid.name!r} at size {size!r}, "
            f"got shape {values.shape}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Imported here: plotting is optional work, and matplotlib/healpy are slow to import.
    from matplotlib.figure import Figure

    if grid.name == "healpix":
        from healpy.projaxes import HpxMollweideAxes

        from geoconv.grids.healpix import faces_to_nest

        figure = Figure(figsize=(8.5, 5.4))
        axes = HpxMollweideAxes(figure, (0.02, 0.15, 0.96, 0.78), flipconv="geo")
        figure.add_axes(axes)
        with warnings.catch_warnings():
            # healpy's own colour-map set-up uses matplotlib calls pending deprecation; not ours to fix.
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            axes.projmap(faces_to_nest(values), nest=True, xsize=800, cmap=cmap)
        axes.graticule(dpar=30, dmer=60, alpha=0.3)
        figure.colorbar(axes.get_images()[0], ax=axes, orientation="horizontal", shrink=0.5, pad=0.05)
    else:
        if grid.name == "cubemap":
            faces = int(resolution)  # type: ignore[arg-type]
            values = convert(torch.from_numpy(values)[None, None], grid, "equirect", (2 * faces, 4 * faces))[0, 0]
            values = values.numpy()
        width = values.shape[1]
        figure = Figure(figsize=(8.0, 4.2), layout="constrained")
        axes = figure.add_subplot()
        # Pixel j is centred on longitude 360 j / W; row i spans colatitude [i, i + 1] 180 / H.
        half = 180.0 / width
        image = axes.imshow(values, extent=(-half, 360.0 - half, -90.0, 90.0), origin="upper", cmap=cmap)
        axes.set_xlabel("longitude (°)")
        axes.set_ylabel("latitude (°)")
        axes.set_xticks(np.arange(0, 361, 60))
        axes.set_yticks(np.arange(-90, 91, 30))
        axes.set_xlim(-half, 360.0 - half)  # the ticks would widen the view past the image
        figure.colorbar(image, ax=axes, shrink=0.8)
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100)
    return path
