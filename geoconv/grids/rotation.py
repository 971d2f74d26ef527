r"""Rotations of signals on the sphere: exact pixel permutations where a grid allows, else resampling.

A rotation :math:`R \in SO(3)` acts on a signal by

.. math::

    (R \cdot x)(v) = x(R^\top v),

so that a feature at :math:`v` moves to :math:`Rv`. :func:`rotate` applies it to a tensor
in a grid's layout:

- exactly, as a permutation of pixels, when the grid has that symmetry: the identity on
  every grid, and the turns about the pole the grid declares
  (:meth:`~geoconv.grids.sphere.SphericalGrid.pole_turns`): :math:`R_z(2\pi m / W)` on
  equirect (a roll along longitude), the quarter turns :math:`R_z(k\pi/2)` on the cube
  map and HEALPix;
- otherwise by resampling: the value at pixel :math:`p` is the source grid's bilinear
  interpolation at :math:`R^\top c_p`, :math:`c_p` the pixel's centre.

Public names: :func:`random_rotation`, :func:`check_rotation`, :func:`rotation_about_z`,
:func:`rotate`.

Examples
--------
>>> import math, torch
>>> from geoconv.grids.rotation import rotate, rotation_about_z
>>> x = torch.arange(8.0).view(1, 1, 2, 4)
>>> rotate(x, "equirect", rotation_about_z(math.pi / 2))[0, 0]  # one pixel of longitude: exact
tensor([[3., 0., 1., 2.],
        [7., 4., 5., 6.]])
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from geoconv._checks import check_choice, check_float
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids.base import Grid
from geoconv.grids.conversion import spherical_grid
from geoconv.grids.sphere import SphericalGrid, vectors_to_angles

__all__ = [
    "EXACT_TOLERANCE",
    "ORTHONORMAL_TOLERANCE",
    "check_rotation",
    "random_rotation",
    "rotate",
    "rotation_about_z",
]

ORTHONORMAL_TOLERANCE = 1e-6
"""How far (max-abs of :math:`R^\\top R - I`) a matrix may be from orthonormal."""

EXACT_TOLERANCE = 1e-6
"""How close (max-abs entry) a rotation must be to a grid symmetry to be applied as a permutation."""


def random_rotation(
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64, device: object = None
) -> torch.Tensor:
    r"""A Haar-uniform random rotation matrix ``(3, 3)``.

    A standard normal 4-vector, normalised, is uniform on :math:`S^3`; the unit
    quaternion :math:`q = (w, x, y, z)` it defines is then Haar-uniform on SO(3)
    (its double cover), and its matrix is

    .. math::

        R = \begin{pmatrix}
        1 - 2(y^2 + z^2) & 2(xy - wz) & 2(xz + wy) \\
        2(xy + wz) & 1 - 2(x^2 + z^2) & 2(yz - wx) \\
        2(xz - wy) & 2(yz + wx) & 1 - 2(x^2 + y^2)
        \end{pmatrix}.

    Parameters
    ----------
    generator : torch.Generator, optional
        For reproducible draws (a CPU generator).
    dtype : torch.dtype
        Of the result; the matrix is built in float64 first.
    device : torch.device or str, optional
        Of the result.

    Examples
    --------
    >>> R = random_rotation(torch.Generator().manual_seed(0))
    >>> torch.allclose(R.T @ R, torch.eye(3, dtype=R.dtype)), round(float(torch.det(R)), 12)
    (True, 1.0)
    """
    q = torch.randn(4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm()).tolist()
    matrix = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.tensor(matrix, dtype=torch.float64).to(dtype=dtype, device=device)


def rotation_about_z(angle: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The rotation by ``angle`` (radians, counter-clockwise seen from :math:`+z`) about the pole.

    .. math::

        R_z(\alpha) = \begin{pmatrix} \cos\alpha & -\sin\alpha & 0 \\
        \sin\alpha & \cos\alpha & 0 \\ 0 & 0 & 1 \end{pmatrix}

    It adds ``angle`` to every longitude.

    >>> rotation_about_z(math.pi / 2).round().to(torch.int64)
    tensor([[ 0, -1,  0],
            [ 1,  0,  0],
            [ 0,  0,  1]])
    """
    angle = check_float("angle", angle)
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)


def check_rotation(rotation: object, name: str = "R") -> torch.Tensor:
    """Return ``rotation`` as a ``(3, 3)`` tensor if it is a rotation matrix, else raise.

    Orthonormal to :data:`ORTHONORMAL_TOLERANCE` (max-abs of ``R^T R - I``) and with
    determinant +1 (a reflection is refused). Array-likes become float64 tensors.

    Raises
    ------
    ShapeError
        For a shape other than ``(3, 3)``.
    ParameterError
        For a matrix that is not orthonormal or has determinant -1, with the measured deviation.

    Examples
    --------
    >>> check_rotation(torch.diag(torch.tensor([1.0, 1.0, -1.0])))
    Traceback (most recent call last):
    ...
    geoconv.errors.ParameterError: R must be a rotation (det +1), got det -1 (a reflection)
    """
    if not isinstance(rotation, torch.Tensor):
        try:
            rotation = torch.as_tensor(np.asarray(rotation, dtype=np.float64))
        except (TypeError, ValueError):
            raise ShapeError(f"{name} must be a 3x3 rotation matrix, got {type(rotation).__name__}") from None
    if tuple(rotation.shape) != (3, 3):
        raise ShapeError(f"{name} must be a 3x3 rotation matrix, got shape {tuple(rotation.shape)}")
    if not rotation.is_floating_point():
        rotation = rotation.to(torch.float64)
    matrix = rotation.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(matrix).all():
        raise ParameterError(f"{name} must be a finite 3x3 rotation matrix, got {matrix.tolist()}")
    deviation = float((matrix.T @ matrix - torch.eye(3, dtype=torch.float64)).abs().max())
    if deviation > ORTHONORMAL_TOLERANCE:
        raise ParameterError(
            f"{name} must be orthonormal to {ORTHONORMAL_TOLERANCE:g} (max |R^T R - I|), "
            f"got a deviation of {deviation:.3g}"
        )
    if float(torch.det(matrix)) < 0:
        raise ParameterError(
            f"{name} must be a rotation (det +1), got det {float(torch.det(matrix)):.6g} (a reflection)"
        )
    return rotation


def _turn_about_z(matrix: np.ndarray, turns: int) -> int | None:
    """``k`` if ``matrix`` is within :data:`EXACT_TOLERANCE` of :math:`R_z(2\\pi k / turns)`, else ``None``."""
    angle = math.atan2(matrix[1, 0], matrix[0, 0])
    k = round(angle * turns / (2 * math.pi)) % turns
    exact = rotation_about_z(2 * math.pi * k / turns).numpy()
    return k if np.abs(matrix - exact).max() <= EXACT_TOLERANCE else None


def _exact(x: torch.Tensor, grid: SphericalGrid, matrix: np.ndarray) -> torch.Tensor | None:
    """The rotated signal as a pixel permutation, or ``None`` if the grid lacks that symmetry."""
    if np.abs(matrix - np.eye(3)).max() <= EXACT_TOLERANCE:
        return x
    turns = grid.pole_turns(grid.resolution_of(x))
    if turns == 0:
        return None
    steps = _turn_about_z(matrix, turns)
    return None if steps is None else grid.turn_about_pole(x, steps)


def rotate(
    x: torch.Tensor,
    grid: str | Grid,
    rotation: object,
    size: int | tuple[int, int] | None = None,
    method: Literal["auto", "resample"] = "auto",
) -> torch.Tensor:
    r"""Rotate a signal on a spherical grid: :math:`(R \cdot x)(v) = x(R^\top v)`.

    Parameters
    ----------
    x : torch.Tensor
        A signal in the grid's layout: ``(B, C, H, W)``, ``(B, C, 6, F, F)``, ``(B, C, 12, n, n)``.
    grid : str or SphericalGrid
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
    rotation : torch.Tensor or array_like
        A ``(3, 3)`` rotation matrix (see :func:`check_rotation`).
    size : int or (int, int), optional
        The output resolution (default: that of ``x``). A different size always resamples.
    method : {"auto", "resample"}
        ``"auto"`` applies a rotation within :data:`EXACT_TOLERANCE` of a grid symmetry
        (identity, longitude roll by whole pixels on equirect, quarter turns about the
        pole on cube and HEALPix) as an exact pixel permutation, and resamples otherwise.
        ``"resample"`` always interpolates, e.g. to measure the interpolation floor of
        the identity.

    Returns
    -------
    torch.Tensor
        The rotated signal in the grid's layout at the output resolution (``x`` itself
        for the identity under ``"auto"``). Differentiable in ``x``.

    Examples
    --------
    >>> x = torch.randn(1, 2, 8, 16, dtype=torch.float64)
    >>> R = rotation_about_z(2 * math.pi * 3 / 16)
    >>> torch.equal(rotate(x, "equirect", R), torch.roll(x, 3, dims=-1))
    True
    >>> torch.allclose(rotate(x, "equirect", R, method="resample"), torch.roll(x, 3, dims=-1))
    True
    """
    grid = spherical_grid(grid, "rotate")
    x = grid.check(x)
    method = check_choice("method", method, ("auto", "resample"))
    matrix = check_rotation(rotation).detach().to(device="cpu", dtype=torch.float64).numpy()
    own = grid.resolution_of(x)
    size = own if size is None else grid.resolution(size)
    if method == "auto" and size == own:
        exact = _exact(x, grid, matrix)
        if exact is not None:
            return exact
    # Rows of `centres @ R` are R^T c_p: where each output pixel's value comes from.
    sources = grid.vectors(size) @ matrix
    return grid.interpolate(x, *vectors_to_angles(sources))
