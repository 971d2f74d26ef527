r"""The spectral-transform rows: geoconv's spherical-harmonic analysis + synthesis beside ducc0's.

Both run on the same equirect grid, ``H = 2(L + 1)`` rows at colatitudes
:math:`\theta_i = (i + \frac12)\pi/H` and ``W = 2H`` columns at :math:`\phi_j = 2\pi j/W`
(:func:`~.rows.sht_size`), which is ducc0's ``"F1"`` geometry (Fejér's first rule) with
``phi0 = 0``. geoconv's transform is :func:`geoconv.ops.spectral.sh_analysis` then
:func:`~geoconv.ops.spectral.sh_synthesis`; ducc0's is ``ducc0.sht.analysis_2d`` then
``ducc0.sht.synthesis_2d``, one map at a time (spin 0 takes one component per call), with
``torch.get_num_threads()`` threads. Both compute the same coefficients of a band-limited
field (:func:`ducc0_analysis` converts ducc0's to geoconv's layout; the tests compare them in
float64).

Coefficients. ducc0 stores complex :math:`a_{lm}`, :math:`m \ge 0`, in healpy's order
(index :math:`m(2L + 1 - m)/2 + l`) for harmonics with the Condon–Shortley phase; geoconv's real
harmonics have none. A real field :math:`f = \sum_l a_{l0} Y_{l0} + 2 \sum_{m > 0} \mathrm{Re}(a_{lm} Y_{lm})`
therefore has geoconv coefficients

.. math::

    c_{l0} = a_{l0}, \qquad c_{lm}^{\cos} = (-1)^m \sqrt2\, \mathrm{Re}\, a_{lm}, \qquad
    c_{lm}^{\sin} = -(-1)^m \sqrt2\, \mathrm{Im}\, a_{lm} \quad (m > 0).
"""

from __future__ import annotations

import numpy as np
import torch

from geoconv.ops.spectral import sh_analysis, sh_synthesis

__all__ = ["alm_to_real", "ducc0_analysis", "ducc0_round_trip", "geoconv_round_trip"]


def geoconv_round_trip(x: torch.Tensor, lmax: int) -> torch.Tensor:
    """geoconv's analysis to degree ``lmax``, then synthesis on the same grid: ``(..., H, W) -> (..., H, W)``."""
    return sh_synthesis(sh_analysis(x, lmax), x.shape[-2], x.shape[-1])


def _maps(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The maps of ``x`` (``(..., H, W)``) as a C-contiguous numpy array ``(N, H, W)`` (no copy when it is one)."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(array.reshape(-1, *array.shape[-2:]))


def ducc0_round_trip(x: torch.Tensor, lmax: int, nthreads: int | None = None) -> torch.Tensor:
    """ducc0's analysis to degree ``lmax`` (geometry ``F1``), then synthesis on the same grid, map by map.

    ``x`` is ``(..., H, W)`` in float32 or float64 on the CPU; the result has its shape and dtype.
    """
    import ducc0  # imported here: an optional package

    threads = torch.get_num_threads() if nthreads is None else nthreads
    maps = _maps(x)
    height, width = maps.shape[-2:]
    out = np.empty_like(maps)
    for i in range(maps.shape[0]):
        alm = ducc0.sht.analysis_2d(map=maps[i : i + 1], spin=0, lmax=lmax, geometry="F1", nthreads=threads)
        ducc0.sht.synthesis_2d(
            alm=alm, spin=0, lmax=lmax, geometry="F1", ntheta=height, nphi=width, nthreads=threads, map=out[i : i + 1]
        )
    return torch.from_numpy(out.reshape(x.shape))


def alm_to_real(alm: np.ndarray, lmax: int) -> np.ndarray:
    """ducc0's (healpy's) complex coefficients ``(..., n_alm)`` as geoconv's real ones ``(..., l, m, 2)``.

    >>> alm = np.zeros(6, dtype=complex); alm[3] = 1 - 2j  # (l, m) = (1, 1) at lmax 2
    >>> real = alm_to_real(alm, 2)
    >>> bool(np.allclose(real[1, 1], [-np.sqrt(2), -2 * np.sqrt(2)])), float(np.abs(real).sum().round(6))
    (True, 4.242641)
    """
    ell, m = np.meshgrid(np.arange(lmax + 1), np.arange(lmax + 1), indexing="ij")
    valid = m <= ell
    index = np.where(valid, m * (2 * lmax + 1 - m) // 2 + ell, 0)
    values = alm[..., index] * valid  # (..., l, m): zero where m > l
    # g_m (-1)^m with g_m = sqrt(2) for m > 0 and 1 for m = 0: the real harmonics against healpy's
    scale = np.where(m == 0, 1.0, np.sqrt(2.0)) * (-1.0) ** m
    return np.stack([scale * values.real, -scale * values.imag], axis=-1)


def ducc0_analysis(x: torch.Tensor | np.ndarray, lmax: int, nthreads: int = 1) -> np.ndarray:
    """ducc0's coefficients of the equirect maps ``x`` (``(..., H, W)``), in geoconv's layout ``(..., l, m, 2)``."""
    import ducc0  # imported here: an optional package

    maps = _maps(x)
    alms = [
        ducc0.sht.analysis_2d(map=maps[i : i + 1], spin=0, lmax=lmax, geometry="F1", nthreads=nthreads)[0]
        for i in range(maps.shape[0])
    ]
    shape = np.shape(x)[:-2]
    return alm_to_real(np.stack(alms).reshape(*shape, -1), lmax)
