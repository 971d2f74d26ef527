"""The plumbing every spherical probe shares: argument checks, the model's device, eval mode.

Private to :mod:`geoconv.probes.sphere` and :mod:`geoconv.probes.sphere_erf`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids.conversion import spherical_grid
from geoconv.grids.fields import check_lmax
from geoconv.grids.sphere import Resolution, SphericalGrid, angles_to_vectors

__all__ = ["Centre", "Resolution", "UNIT_TOLERANCE"]

Centre = Sequence[float] | np.ndarray | torch.Tensor
"""A point on the sphere: a unit vector ``(x, y, z)`` or ``(colatitude, longitude)`` in radians."""

UNIT_TOLERANCE = 1e-6
"""How far from 1 the norm of a centre given as a vector may be."""


def _grid(grid: object, what: str) -> SphericalGrid:
    # get_grid names the parameter and suggests the closest grids for an unknown name;
    # spherical_grid refuses the plane.
    return spherical_grid(grid, what)  # type: ignore[arg-type]


def _resolution(grid: SphericalGrid, size: object) -> Resolution:
    """``size`` checked for ``grid``; every message names the probes' parameter ``size``."""
    try:
        return grid.resolution(size)
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


def _lmax(grid: SphericalGrid, resolution: Resolution, lmax: object) -> int:
    return grid.default_lmax(resolution) if lmax is None else check_lmax(lmax)


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


def _noise(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    # A seeded CPU generator: drawn on the CPU in float64 (reproducible on any device), moved once.
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
