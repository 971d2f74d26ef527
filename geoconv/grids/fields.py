r"""Band-limited random fields on the sphere: the ground truth of every rotation test.

A field is a finite expansion in real spherical harmonics,

.. math::

    f_{bc}(v) = \sum_{l=0}^{L} \sum_{m=-l}^{l} a_{bc,lm}\, Y_{lm}(v), \qquad v \in S^2,

with e3nn's real harmonics (``e3nn.o3.spherical_harmonics``, ``normalization="integral"``:
:math:`\int_{S^2} Y_{lm}^2\,d\Omega = 1`, so :math:`\int f^2\,d\Omega = \sum a_{lm}^2`).
It can be evaluated exactly at any point, so sampling it at a grid's pixel centres gives
a signal whose exact rotation is known: rotating a field is a linear map of its
coefficients by the real Wigner D matrices, since e3nn's harmonics satisfy
:math:`Y(Rv) = D(R)\,Y(v)`:

.. math::

    (R \cdot f)(v) = f(R^\top v) = a^\top D(R)^\top Y(v) = (D(R)\,a)^\top Y(v).

The harmonics are e3nn's explicit polynomials, available up to degree 12.

Public names: :class:`BandLimitedField`, :func:`harmonics`, :func:`wigner_d`, :data:`MAX_DEGREE`.

Examples
--------
>>> import torch
>>> from geoconv.grids.fields import BandLimitedField
>>> from geoconv.grids.rotation import random_rotation
>>> field = BandLimitedField.random(4, channels=2, generator=torch.Generator().manual_seed(0))
>>> field.sample("equirect", 8).shape
torch.Size([1, 2, 8, 16])
>>> R = random_rotation(torch.Generator().manual_seed(1))
>>> v = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64), dim=-1)
>>> torch.allclose(field.rotate(R).evaluate(v), field.evaluate(v @ R))  # f(R^T v)
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from geoconv._checks import check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids.conversion import spherical_grid
from geoconv.grids.rotation import check_rotation
from geoconv.grids.sphere import MAX_DEGREE, SphericalGrid, angles_to_vectors

__all__ = ["MAX_DEGREE", "BandLimitedField", "harmonics", "wigner_d"]

Spectrum = Sequence[float] | Callable[[int], float] | None
"""An angular power spectrum: ``C_l`` per degree ``l = 0..lmax``, a function of ``l``, or white (``None``)."""


def check_lmax(lmax: object, name: str = "lmax") -> int:
    """Return ``lmax`` if it is an int in ``[0, MAX_DEGREE]``."""
    return check_int(name, lmax, minimum=0, maximum=MAX_DEGREE)


def _spectrum_values(spectrum: Spectrum, lmax: int) -> np.ndarray:
    """``C_l`` for ``l = 0..lmax`` as a float64 array of non-negative numbers."""
    if spectrum is None:
        values = np.ones(lmax + 1)
    elif callable(spectrum):
        values = np.array([float(spectrum(degree)) for degree in range(lmax + 1)])
    else:
        values = np.asarray(spectrum, dtype=np.float64).reshape(-1)
        if values.shape != (lmax + 1,):
            raise ParameterError(
                f"spectrum must hold one C_l per degree l = 0..{lmax} ({lmax + 1} values), got {values.size}"
            )
    if not (np.isfinite(values).all() and (values >= 0).all()):
        raise ParameterError(f"spectrum must be finite and >= 0 for every degree, got {values.tolist()}")
    return values


def harmonics(
    lmax: int, vectors: object, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """e3nn's real spherical harmonics of degrees ``0..lmax`` at points on the sphere.

    Parameters
    ----------
    lmax : int
        ``0 <= lmax <= 12``.
    vectors : array_like or torch.Tensor
        Shape ``(*points, 3)``; normalised first, so any non-zero vector works.
    dtype, device
        Of the result.

    Returns
    -------
    torch.Tensor
        Shape ``(*points, (lmax + 1)**2)``, ``normalization="integral"`` (orthonormal on the sphere).

    Examples
    --------
    >>> harmonics(1, [0.0, 0.0, 2.0]) * (4 * np.pi) ** 0.5  # Y_0 = 1, Y_1 = sqrt(3) (x, y, z) before scaling
    tensor([1.0000, 0.0000, 0.0000, 1.7321], dtype=torch.float64)
    """
    lmax = check_lmax(lmax)
    v = torch.as_tensor(np.asarray(vectors) if not isinstance(vectors, torch.Tensor) else vectors)
    v = v.to(dtype=dtype, device=device)
    if v.dim() < 1 or v.shape[-1] != 3:
        raise ShapeError(f"vectors must have shape (..., 3), got shape {tuple(v.shape)}")
    # Imported here: e3nn is only needed once fields are evaluated.
    from e3nn import o3

    return o3.spherical_harmonics(list(range(lmax + 1)), v, normalize=True, normalization="integral")


def _quadrature(lmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``(P, 3)`` and weights ``(P,)`` integrating polynomials of degree <= 2 lmax on the sphere exactly."""
    cos_colat, gauss_weights = np.polynomial.legendre.leggauss(lmax + 1)
    longitudes = 2 * lmax + 2
    colat, lon = np.meshgrid(np.arccos(cos_colat), 2 * np.pi * np.arange(longitudes) / longitudes, indexing="ij")
    weights = np.repeat(gauss_weights * (2 * np.pi / longitudes), longitudes)
    return torch.from_numpy(angles_to_vectors(colat, lon).reshape(-1, 3)), torch.from_numpy(weights)


def _degrees(lmax: int, device: torch.device | None = None) -> torch.Tensor:
    """The degree ``l`` of each of the ``(lmax + 1)**2`` coefficients."""
    ls = torch.arange(lmax + 1, device=device)
    return torch.repeat_interleave(ls, 2 * ls + 1)


def wigner_d(lmax: int, rotation: object) -> torch.Tensor:
    r"""The real Wigner D matrix of a rotation in e3nn's harmonic basis, float64.

    .. math::

        D(R)_{ij} = \int_{S^2} Y_i(Rv)\, Y_j(v)\, d\Omega,

    so that :math:`Y(Rv) = D(R)\,Y(v)`: block diagonal (one block per degree) and
    orthogonal. The integrand is a polynomial of degree :math:`\le 2L` on the sphere, so
    ``L + 1`` Gauss-Legendre nodes in :math:`\cos\theta` times ``2L + 2`` equally spaced
    longitudes integrate it exactly, and D is exact to float64 round-off. (e3nn's
    ``Irreps.D_from_matrix`` agrees, but builds its generators in the default dtype, so
    under float32 defaults it is good to only ~1e-6.)

    Parameters
    ----------
    lmax : int
        ``0 <= lmax <= 12``.
    rotation : torch.Tensor or array_like
        A 3x3 rotation matrix.

    Returns
    -------
    torch.Tensor
        Shape ``((lmax + 1)**2, (lmax + 1)**2)``, float64, on the CPU.

    Examples
    --------
    >>> from geoconv.grids.rotation import rotation_about_z
    >>> wigner_d(1, rotation_about_z(np.pi / 2)).round().to(torch.int64)  # l = 1 acts on (x, y, z)
    tensor([[ 1,  0,  0,  0],
            [ 0,  0, -1,  0],
            [ 0,  1,  0,  0],
            [ 0,  0,  0,  1]])
    """
    lmax = check_lmax(lmax)
    matrix = check_rotation(rotation).detach().to(device="cpu", dtype=torch.float64)
    nodes, weights = _quadrature(lmax)
    rotated = harmonics(lmax, nodes @ matrix.T)  # rows: Y(R v_k)
    d = rotated.T @ (weights[:, None] * harmonics(lmax, nodes))
    degrees = _degrees(lmax)
    return torch.where(degrees[:, None] == degrees[None, :], d, torch.zeros_like(d))


class BandLimitedField:
    r"""A batch of real band-limited signals on the sphere, from spherical-harmonic coefficients.

    Parameters
    ----------
    coefficients : torch.Tensor
        Shape ``(B, C, (lmax + 1)**2)``, floating point. The last dim is ordered by degree
        ``l`` and, within a degree, by e3nn's order of ``m`` (for ``l = 1``: the
        ``x, y, z`` components).
    lmax : int
        The band limit, ``0 <= lmax <= 12``.

    Examples
    --------
    >>> import math, torch
    >>> field = BandLimitedField(torch.tensor([[[math.sqrt(4 * math.pi)]]]), lmax=0)
    >>> field.evaluate(torch.tensor([[0.0, 0.0, 1.0]]))  # Y_00 = 1 / sqrt(4 pi)
    tensor([[[1.]]])
    """

    def __init__(self, coefficients: torch.Tensor, lmax: int) -> None:
        self.lmax = check_lmax(lmax)
        coefficients = check_tensor(
            coefficients, ndim=3, name="coefficients", layout="(B, C, (lmax + 1)**2)", floating=True
        )
        if coefficients.shape[-1] != (self.lmax + 1) ** 2:
            raise ShapeError(
                f"coefficients for lmax={self.lmax} must have shape (B, C, {(self.lmax + 1) ** 2}), "
                f"got shape {tuple(coefficients.shape)}"
            )
        self.coefficients = coefficients

    @classmethod
    def random(
        cls,
        lmax: int,
        batch: int = 1,
        channels: int = 1,
        spectrum: Spectrum = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> BandLimitedField:
        r"""Gaussian random coefficients :math:`a_{lm} \sim \mathcal N(0, C_l)`.

        Parameters
        ----------
        lmax : int
            The band limit, ``0 <= lmax <= 12``.
        batch, channels : int
            The leading dims ``(B, C)``.
        spectrum : sequence of float, callable or None
            The angular power spectrum :math:`C_l`: ``lmax + 1`` values, a function of
            ``l``, or ``None`` for white noise (:math:`C_l = 1`). The pointwise variance
            is :math:`\sum_l (2l + 1) C_l / 4\pi`.
        generator : torch.Generator, optional
            For reproducible fields (drawn on the CPU).
        dtype : torch.dtype
            Of the coefficients (float64 by default: the exact reference).

        Examples
        --------
        >>> field = BandLimitedField.random(3, batch=2, channels=4, spectrum=lambda l: 1.0 / (1 + l) ** 2)
        >>> field.coefficients.shape
        torch.Size([2, 4, 16])
        """
        lmax = check_lmax(lmax)
        batch = check_int("batch", batch, minimum=1)
        channels = check_int("channels", channels, minimum=1)
        scale = np.sqrt(np.repeat(_spectrum_values(spectrum, lmax), 2 * np.arange(lmax + 1) + 1))
        noise = torch.randn(batch, channels, (lmax + 1) ** 2, generator=generator, dtype=torch.float64)
        return cls((noise * torch.from_numpy(scale)).to(dtype), lmax)

    # -- properties ---------------------------------------------------------------------

    @property
    def batch(self) -> int:
        """``B``."""
        return int(self.coefficients.shape[0])

    @property
    def channels(self) -> int:
        """``C``."""
        return int(self.coefficients.shape[1])

    def power(self) -> torch.Tensor:
        r"""The empirical power spectrum, shape ``(B, C, lmax + 1)``.

        .. math:: \hat C_l = \frac{1}{2l+1}\sum_m a_{lm}^2
        """
        squares = self.coefficients.pow(2)
        degrees = _degrees(self.lmax, squares.device)
        total = squares.new_zeros(*squares.shape[:-1], self.lmax + 1).index_add(-1, degrees, squares)
        return total / (2 * torch.arange(self.lmax + 1, dtype=squares.dtype, device=squares.device) + 1)

    # -- evaluation ---------------------------------------------------------------------

    def harmonics(self, vectors: object) -> torch.Tensor:
        """e3nn's real harmonics ``(*points, (lmax + 1)**2)`` at ``vectors`` ``(*points, 3)``; see :func:`harmonics`."""
        return harmonics(self.lmax, vectors, self.coefficients.dtype, self.coefficients.device)

    def evaluate(self, vectors: object) -> torch.Tensor:
        """The field's values at points on the sphere.

        Parameters
        ----------
        vectors : array_like or torch.Tensor
            Shape ``(*points, 3)``; normalised before use.

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, *points)``, the coefficients' dtype and device.
        """
        y = self.harmonics(vectors)
        points = y.shape[:-1]
        values = self.coefficients @ y.reshape(-1, y.shape[-1]).T
        return values.reshape(self.batch, self.channels, *points)

    def sample(self, grid: str | SphericalGrid, size: int | tuple[int, int]) -> torch.Tensor:
        """The field at the pixel centres of a spherical grid, in that grid's layout.

        Parameters
        ----------
        grid : str or SphericalGrid
            ``"equirect"``, ``"cubemap"``, ``"healpix"`` (the plane has no sphere to sample).
        size : int
            The grid's resolution (``H`` on equirect, or ``(H, W)`` there; the face side on
            the cube; nside on HEALPix).

        Returns
        -------
        torch.Tensor
            ``grid.shape(B, C, size)``, e.g. ``(B, C, H, 2H)`` or ``(B, C, 12, n, n)``.
        """
        return spherical_grid(grid, "sample").sample_field(self, size)

    # -- symmetry -----------------------------------------------------------------------

    def wigner_d(self, rotation: object) -> torch.Tensor:
        """The real Wigner D matrix of ``rotation`` up to this field's ``lmax``; see :func:`wigner_d`."""
        return wigner_d(self.lmax, rotation)

    def rotate(self, rotation: object) -> BandLimitedField:
        r"""The rotated field :math:`R \cdot f`, with :math:`(R \cdot f)(v) = f(R^\top v)`, exactly.

        Parameters
        ----------
        rotation : torch.Tensor or array_like
            A 3x3 rotation matrix (orthonormal, det +1).

        Returns
        -------
        BandLimitedField
            Coefficients :math:`D(R)\,a`, same shape, dtype and device.
        """
        d = self.wigner_d(rotation).to(dtype=self.coefficients.dtype, device=self.coefficients.device)
        return BandLimitedField(self.coefficients @ d.T, self.lmax)

    def __repr__(self) -> str:
        return (
            f"BandLimitedField(lmax={self.lmax}, batch={self.batch}, channels={self.channels}, "
            f"dtype={self.coefficients.dtype})"
        )
