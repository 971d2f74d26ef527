r"""Reading and writing single map files: HEALPix FITS, NetCDF lat-lon fields, images and ``.npy`` arrays.

:func:`read_map` turns one file into a :class:`MapFile`: its values ``(C, *spatial)`` (float32)
in the layout of the grid the file is on, that grid, its resolution and what :func:`write_map`
needs to write a file like it. :func:`to_grid` regrids a map to the grid a model runs on.

* ``.fits``, ``.fit``, ``.fits.gz`` (``fits``): a HEALPix map (healpy), ``(C, 12, n, n)`` faces,
  one channel per column, reordered from the header's ``ORDERING`` (``RING`` or ``NESTED``).
* ``.nc`` (``netcdf``): one variable of a regular global lat-lon grid, equirect ``(C, H, W)``
  (needs ``pip install "geoconv[netcdf]"``).
* ``.png``, ``.jpg``, ``.jpeg`` (``image``, Pillow): grey -> 1 channel, RGB -> 3, in ``[0, 1]``;
  equirect when ``W = 2H``, or a flat picture on a flat grid.
* ``.npy`` (``npy``): ``(C, *spatial)`` or ``(*spatial)`` in the layout of ``npy_grid``.

Policies
--------
* **Missing pixels.** A map with NaN, infinite or HEALPix ``UNSEEN`` pixels is refused, naming
  the file and the count: a network cannot be trained on holes, and any fill (zero, the mean)
  is a modelling choice the user should make and see (e.g. ``healpy.ma``, ``xarray.fillna``).
* **NetCDF grids.** The latitude and longitude dims are found by name (``lat``/``latitude``/``y``,
  ``lon``/``longitude``/``x``) or by their ``standard_name`` or ``units``. The grid must be
  regular and global: longitudes uniformly spaced at :math:`360°/W` (``W`` even, any start:
  −180..180 is rolled; a repeated wrap-around column is dropped); latitudes uniformly spaced
  at :math:`180°/H'`, on cell centres (±(90° − d/2)) or on nodes with both poles (±90°, ``H' + 1``
  rows), in either order. On geoconv's centres (colatitude :math:`(i + \frac12)\pi/H`, longitude
  :math:`2\pi j/W`) values are taken as they are; otherwise interpolated linearly (periodic in
  longitude) to them: a node grid of ``H' + 1`` rows gives ``H'`` rows, means of neighbouring
  rows. Gaussian, regional or curvilinear grids are refused. A dim named ``channel``/``band``
  holds the channels; any other extra dim (time, level) must have size 1.
* **Images.** ``RGBA``/``LA`` lose their alpha channel; palette and other colour modes are
  converted to RGB; 8-bit values are divided by 255, 16-bit ones by 65535. An image covers
  the whole sphere only if it is 2:1 (``W = 2H``): other shapes are refused unless
  ``npy_grid`` names a flat grid (``planar``), which reads every image as a flat picture.

Public names: :data:`FORMATS`, :class:`MapFile`, :func:`map_format`, :func:`map_stem`,
:func:`read_map`, :func:`to_grid`, :func:`write_map`.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> np.save(folder / "a.npy", np.ones((2, 4, 8), dtype=np.float32))
>>> m = read_map(folder / "a.npy", npy_grid="equirect")
>>> m.format, m.grid, m.size, tuple(m.values.shape), tuple(to_grid(m, "healpix", 2).shape)
('npy', 'equirect', 4, (2, 4, 8), (2, 12, 2, 2))
>>> import shutil; shutil.rmtree(folder)
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoconv._io import atomic_path, atomic_write
from geoconv.errors import GeoconvError, ShapeError
from geoconv.grids import get_grid

__all__ = ["FORMATS", "MapFile", "map_format", "map_stem", "read_map", "to_grid", "write_map"]

FORMATS: dict[str, str] = {
    ".fits": "fits",
    ".fit": "fits",
    ".fits.gz": "fits",
    ".nc": "netcdf",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".npy": "npy",
}
"""File suffix (lower case) -> format."""

_LAT_NAMES, _LON_NAMES = ("lat", "latitude", "y"), ("lon", "longitude", "x")
_LAT_UNITS = ("degrees_north", "degree_north", "degrees_n", "degree_n")
_LON_UNITS = ("degrees_east", "degree_east", "degrees_e", "degree_e")
_CHANNEL_DIMS = ("channel", "channels", "band", "bands")


@dataclass(frozen=True, eq=False)
class MapFile:
    """One map read from a file (:func:`read_map`).

    Attributes
    ----------
    path : Path
        The file.
    format : str
        ``"fits"``, ``"netcdf"``, ``"image"`` or ``"npy"``.
    values : torch.Tensor
        ``(C, *spatial)`` float32 in ``grid``'s layout: ``(C, 12, n, n)`` on HEALPix, ``(C, H, W)``.
    grid : str
        ``"healpix"`` (FITS), ``"equirect"`` (NetCDF, 2:1 images) or the grid given (``.npy``, flat images).
    size : int or (int, int)
        As :func:`geoconv.grids.convert` takes it: nside; ``H`` (``(H, W)`` when ``W != 2H``) on equirect.
    meta : dict
        What :func:`write_map` needs to write a file like this one (FITS ordering and columns;
        NetCDF variable, dims and coordinates; image mode and bit depth; ...).
    """

    path: Path
    format: str
    values: torch.Tensor
    grid: str
    size: int | tuple[int, int]
    meta: dict = field(default_factory=dict)


def _suffix(path: str | os.PathLike) -> str | None:
    name = Path(path).name.lower()
    # Longest first: "a.fits.gz" is ".fits.gz", not an unsupported ".gz".
    return next((s for s in sorted(FORMATS, key=len, reverse=True) if name.endswith(s) and len(name) > len(s)), None)


def map_format(path: str | os.PathLike) -> str:
    """The format of ``path`` from its suffix (:data:`FORMATS`, case-insensitive).

    >>> map_format("sky.FITS"), map_format("a/b.fits.gz"), map_format("t2m.nc")
    ('fits', 'fits', 'netcdf')
    >>> map_format("notes.txt")
    Traceback (most recent call last):
    ...
    geoconv.errors.GeoconvError: file 'notes.txt' has an unsupported suffix; supported: .fits, .fit, ...
    """
    suffix = _suffix(path)
    if suffix is None:
        raise GeoconvError(f"file {str(path)!r} has an unsupported suffix; supported: {', '.join(FORMATS)}")
    return FORMATS[suffix]


def map_stem(path: str | os.PathLike) -> str:
    """The file name without its map suffix: what pairs an input with its mask.

    >>> map_stem("a/x.fits.gz"), map_stem("y.PNG"), map_stem("notes.txt")
    ('x', 'y', 'notes')
    """
    suffix = _suffix(path)
    return Path(path).name[: -len(suffix)] if suffix else Path(path).stem


def _check_finite(path: Path, values: np.ndarray, bad: np.ndarray | None = None) -> None:
    bad = ~np.isfinite(values) if bad is None else bad
    count = int(bad.sum())
    if count:
        raise GeoconvError(
            f"file {str(path)!r} has {count} missing pixels (NaN, inf or UNSEEN) of {values.size}; geoconv does not "
            "guess values for holes: fill them first (e.g. healpy.ma(...).filled(0) or xarray's fillna)"
        )


def read_map(path: str | os.PathLike, *, variable: str | None = None, npy_grid: str | None = None) -> MapFile:
    """Read one map file (see the module docstring for the formats and policies).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its suffix picks the format (:func:`map_format`).
    variable : str, optional
        NetCDF: the variable to read (``None``: the file's only data variable); others ignore it.
    npy_grid : str, optional
        The grid a ``.npy`` file is laid out on (required for ``.npy``); a flat grid (``"planar"``)
        reads images as flat pictures of any shape.

    Returns
    -------
    MapFile
        ``values`` ``(C, *spatial)`` float32 on ``grid`` at ``size``.

    Raises
    ------
    GeoconvError
        Naming the file, what was expected and what came in: a missing file, an unsupported
        suffix, an unreadable file, missing pixels, a layout or grid that does not fit.

    Examples
    --------
    >>> import tempfile, pathlib, healpy, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> healpy.write_map(str(folder / "m.fits"), np.arange(48.0), nest=True, dtype=np.float32)
    >>> m = read_map(folder / "m.fits")
    >>> m.grid, m.size, m.meta["ordering"], m.values[0, 0].tolist()
    ('healpix', 2, 'NESTED', [[0.0, 2.0], [1.0, 3.0]])
    >>> import shutil; shutil.rmtree(folder)
    """
    path = Path(path)
    fmt = map_format(path)
    if not path.is_file():
        raise GeoconvError(f"map file {str(path)!r} does not exist (or is not a file)")
    _ = npy_grid is None or get_grid(npy_grid)  # an unknown name: did-you-mean over the grids
    reader = {"fits": _read_fits, "netcdf": _read_netcdf, "image": _read_image, "npy": _read_npy}[fmt]
    values, grid, size, meta = reader(path, variable=variable, npy_grid=npy_grid)
    _check_finite(path, values)
    return MapFile(path, fmt, torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)), grid, size, meta)


def _read_fits(path: Path, **_: Any) -> tuple[np.ndarray, str, int, dict]:
    import healpy  # GPL: imported only when a FITS file is read

    from geoconv.grids.healpix import nest_to_faces, ring_to_faces

    logger = logging.getLogger("healpy")
    level, _ = logger.level, logger.setLevel(logging.WARNING)  # not three INFO lines per file of a folder
    try:
        maps, header = healpy.read_map(str(path), field=None, nest=None, h=True, dtype=None)
    except Exception as err:  # healpy and astropy raise many types for a file that is not a HEALPix map
        raise GeoconvError(f"file {str(path)!r} is not a HEALPix FITS map healpy can read: {err}") from None
    finally:
        logger.setLevel(level)
    header = dict(header)
    ordering = str(header.get("ORDERING", "")).strip().upper()
    if ordering not in ("RING", "NESTED"):
        raise GeoconvError(
            f"file {str(path)!r}: its FITS header's ORDERING must be RING or NESTED, got {header.get('ORDERING')!r}"
        )
    maps = np.atleast_2d(np.asarray(maps, dtype=np.float64))
    nside = int(header.get("NSIDE", 0)) or healpy.npix2nside(maps.shape[-1])
    if nside & (nside - 1):
        raise GeoconvError(
            f"file {str(path)!r}: nside {nside} is not a power of two; geoconv's HEALPix faces need one "
            "(healpy.ud_grade the map to a power of two)"
        )
    _check_finite(path, maps, healpy.mask_bad(maps) | ~np.isfinite(maps))
    faces = (ring_to_faces if ordering == "RING" else nest_to_faces)(maps)
    columns = [str(header.get(f"TTYPE{i + 1}", f"COLUMN{i}")) for i in range(maps.shape[0])]
    meta = {"ordering": ordering, "nside": nside, "columns": columns, "coord": header.get("COORDSYS")}
    return faces, "healpix", nside, meta


def _write_fits(path: Path, values: torch.Tensor, like: MapFile) -> None:
    import healpy

    from geoconv.grids.healpix import faces_to_nest, faces_to_ring

    nest = like.meta.get("ordering", "RING") == "NESTED"
    flat = (faces_to_nest if nest else faces_to_ring)(values.detach().cpu().double().numpy()).astype(np.float32)
    columns = like.meta.get("columns")
    columns = columns if columns and len(columns) == len(flat) else None  # healpy's defaults otherwise
    with atomic_path(path) as temporary:
        healpy.write_map(
            str(temporary), list(flat), nest=nest, dtype=[np.float32] * len(flat), coord=like.meta.get("coord"),
            column_names=columns, overwrite=True,
        )  # fmt: skip


def _xarray(path: Path) -> Any:
    try:
        import xarray
    except ImportError:
        raise GeoconvError(
            f'reading or writing the NetCDF file {str(path)!r} needs xarray and netCDF4: pip install "geoconv[netcdf]"'
        ) from None
    return xarray


def _is_axis(da: Any, dim: str, names: tuple[str, ...], standard: str, units: tuple[str, ...]) -> bool:
    attrs = da[dim].attrs if dim in da.coords else {}
    return (
        dim.lower() in names
        or str(attrs.get("standard_name", "")).lower() == standard
        or str(attrs.get("units", "")).lower() in units
    )


def _tolerance(spacing: float) -> float:
    # A thousandth of a pixel, but never below what float32 coordinates near 360° can resolve.
    return max(1e-3 * spacing, 2e-4)


def _uniform(values: np.ndarray) -> float | None:
    steps = np.diff(values)
    ok = len(values) > 1 and np.allclose(steps, steps.mean(), rtol=0, atol=_tolerance(abs(steps.mean())))
    return float(steps.mean()) if ok else None


def _linear(count: int, position: np.ndarray, periodic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of linear interpolation at fractional source ``position``s."""
    low = np.floor(position).astype(np.int64)
    wrap = (lambda i: i % count) if periodic else (lambda i: np.clip(i, 0, count - 1))
    return wrap(low), wrap(low + 1), position - low


def _latitude_rows(path: Path, lat: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, bool]:
    """``H`` and, for each equirect row, the file rows and weight to read it from; exactness."""
    north_first = np.argsort(-lat, kind="stable")
    ordered = lat[north_first]
    step = _uniform(ordered)
    tol = _tolerance(abs(step)) if step else 0.0
    if step is not None and abs(ordered[0] - (90 + step / 2)) <= tol and abs(ordered[-1] - (-90 - step / 2)) <= tol:
        height, exact = len(lat), True  # cell centres: geoconv's rows
        position = np.arange(height, dtype=np.float64)
    elif step is not None and abs(ordered[0] - 90) <= tol and abs(ordered[-1] + 90) <= tol:
        height, exact = len(lat) - 1, False  # nodes with both poles: the centres lie half-way between rows
        position = np.arange(height, dtype=np.float64) + 0.5
    else:
        raise GeoconvError(
            f"file {str(path)!r}: its latitudes ({lat.min():g}..{lat.max():g}, {len(lat)} rows) are not a regular "
            "global grid; geoconv reads uniformly spaced latitudes on cell centres (±(90 - d/2)) or on nodes "
            "including both poles (±90); regrid the file first (e.g. with xESMF or CDO)"
        )
    low, high, weight = _linear(len(lat), position, periodic=False)
    return height, north_first[low], north_first[high], weight, exact


def _longitude_columns(path: Path, lon: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, bool]:
    """``W`` and, for each equirect column, the file columns and weight to read it from; exactness."""
    tol = _tolerance(360.0 / max(len(lon), 1))
    wrapped = np.mod(lon + tol, 360.0) - tol  # in [-tol, 360 - tol): -1e-9 is 0, not 360
    order = np.argsort(wrapped, kind="stable")
    keep = order[np.r_[True, np.diff(wrapped[order]) > tol]]  # a repeated wrap-around column (0 and 360) is dropped
    unique, width = wrapped[keep], len(keep)
    step = _uniform(np.append(unique, unique[0] + 360.0)) if width > 1 else None
    if step is None or abs(step * width - 360) > _tolerance(step) or width % 2:
        raise GeoconvError(
            f"file {str(path)!r}: its longitudes ({lon.min():g}..{lon.max():g}, {len(lon)} columns) are not a regular "
            "global grid of an even number W of columns at spacing 360/W; regrid the file first (e.g. with CDO)"
        )
    exact = abs(unique[0]) <= _tolerance(step)
    position = np.arange(width, dtype=np.float64) - (0.0 if exact else unique[0] / step)
    low, high, weight = _linear(width, position, periodic=True)
    return width, keep[low], keep[high], weight, exact


def _read_netcdf(path: Path, *, variable: str | None = None, **_: Any) -> tuple[np.ndarray, str, Any, dict]:
    xarray = _xarray(path)
    try:
        dataset = xarray.open_dataset(path, decode_times=False)
    except Exception as err:  # netCDF4/h5netcdf/scipy raise many types for an unreadable file
        raise GeoconvError(f"file {str(path)!r} cannot be read as NetCDF: {err}") from None
    with dataset:
        names = [str(name) for name in dataset.data_vars]
        if variable is None and len(names) != 1:
            raise GeoconvError(
                f"file {str(path)!r} holds {len(names)} data variables {names}; name one with data.variable=NAME "
                "(read_map(..., variable=NAME))"
            )
        name = names[0] if variable is None else variable
        if name not in names:
            raise GeoconvError(f"file {str(path)!r} has no data variable {name!r}; its variables: {names}")
        da = dataset[name].load()
    dims = [str(d) for d in da.dims]
    lat_dims = [d for d in dims if _is_axis(da, d, _LAT_NAMES, "latitude", _LAT_UNITS)]
    lon_dims = [d for d in dims if d not in lat_dims and _is_axis(da, d, _LON_NAMES, "longitude", _LON_UNITS)]
    if len(lat_dims) != 1 or len(lon_dims) != 1 or any(d not in da.coords for d in (*lat_dims, *lon_dims)):
        raise GeoconvError(
            f"file {str(path)!r}: variable {name!r} has dims {dict(da.sizes)}; expected one latitude dim "
            f"({'/'.join(_LAT_NAMES)}) and one longitude dim ({'/'.join(_LON_NAMES)}) with coordinate values"
        )
    lat_dim, lon_dim = lat_dims[0], lon_dims[0]
    channel_dims = [d for d in dims if d.lower() in _CHANNEL_DIMS and d not in (lat_dim, lon_dim)]
    others = [d for d in dims if d not in (lat_dim, lon_dim, *channel_dims)]
    if len(channel_dims) > 1 or any(da.sizes[d] != 1 for d in others):
        raise GeoconvError(
            f"file {str(path)!r}: variable {name!r} has dims {dict(da.sizes)}; geoconv reads one map per file, so "
            f"besides {lat_dim!r} and {lon_dim!r} only one dim named {'/'.join(_CHANNEL_DIMS)} (the channels) or "
            f"dims of size 1 are allowed; select one (e.g. ds.isel({others[0] if others else 'time'}=0)) first"
        )
    lat = np.asarray(da[lat_dim].values, dtype=np.float64)
    lon = np.asarray(da[lon_dim].values, dtype=np.float64)
    height, row0, row1, row_weight, rows_exact = _latitude_rows(path, lat)
    width, col0, col1, col_weight, cols_exact = _longitude_columns(path, lon)
    array = np.asarray(da.transpose(*channel_dims, lat_dim, lon_dim, *others).values, dtype=np.float64)
    array = array.reshape(-1, len(lat), len(lon))
    _check_finite(path, array)
    rows = array[:, row0] * (1 - row_weight)[:, None] + array[:, row1] * row_weight[:, None]
    values = rows[:, :, col0] * (1 - col_weight) + rows[:, :, col1] * col_weight
    meta = {
        "variable": name,
        "dims": dims,
        "lat_dim": lat_dim,
        "lon_dim": lon_dim,
        "channel_dim": channel_dims[0] if channel_dims else None,
        "coords": {d: (np.asarray(da[d].values), dict(da[d].attrs)) for d in dims if d in da.coords},
        "exact": rows_exact and cols_exact,
    }
    return values, "equirect", height if width == 2 * height else (height, width), meta


def _write_netcdf(path: Path, values: torch.Tensor, like: MapFile) -> None:
    from geoconv.grids import equirect

    xarray = _xarray(path)
    meta = like.meta
    lat_values = meta["coords"][meta["lat_dim"]][0]
    lon_values = meta["coords"][meta["lon_dim"]][0]
    colat = np.radians(90.0 - np.asarray(lat_values, dtype=np.float64))[:, None]
    lon = np.radians(np.mod(np.asarray(lon_values, dtype=np.float64), 360.0))[None, :]
    # Sampled at the file's own points: exactly the values where they are geoconv's centres
    # (the interpolation returns pixel values at centres), bilinear between them otherwise.
    sampled = equirect.interpolate(values.detach().cpu().double()[None], colat, lon)[0].numpy().astype(np.float32)
    channels = sampled.shape[0]
    channel_dim = meta.get("channel_dim") or ("channel" if channels > 1 else None)
    # Size-1 dims (time, level) are kept with their coordinates; a channel dim keeps its
    # coordinate only when the channel count is the file's.
    dims = [d for d in meta["dims"] if d not in (meta.get("channel_dim"), meta["lat_dim"], meta["lon_dim"])]
    named = ([channel_dim] if channel_dim else []) + [meta["lat_dim"], meta["lon_dim"]]
    coords = {
        d: (d, *meta["coords"][d])
        for d in (*named, *dims)
        if d in meta["coords"] and not (d == channel_dim and len(meta["coords"][d][0]) != channels)
    }
    data = sampled if channel_dim else sampled[0]
    array = xarray.DataArray(data.reshape(data.shape + (1,) * len(dims)), dims=(*named, *dims), coords=coords)
    order = [d for d in meta["dims"] if d in array.dims] + [d for d in array.dims if d not in meta["dims"]]
    dataset = xarray.Dataset({meta["variable"]: array.transpose(*order)})
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)


def _read_image(path: Path, *, npy_grid: str | None = None, **_: Any) -> tuple[np.ndarray, str, Any, dict]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array, bits = np.asarray(image, dtype=np.float64)[None] / 65535.0, 16
            else:
                target = {"1": "L", "L": "L", "LA": "L"}.get(mode, "RGB")  # alpha dropped; palettes to RGB
                array, bits = np.asarray(image.convert(target), dtype=np.float64) / 255.0, 8
                array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    except OSError as err:
        raise GeoconvError(f"file {str(path)!r} cannot be read as an image: {err}") from None
    height, width = array.shape[-2:]
    meta = {"mode": mode, "bits": bits, "channels": array.shape[0]}
    layout = get_grid(npy_grid) if npy_grid is not None else None
    if layout is not None and not layout.spherical:
        size = _flat_size(path, layout, array)
        return array, layout.name, size, meta
    if width != 2 * height:
        raise GeoconvError(
            f"image {str(path)!r} is {width}x{height} (W x H); an image is read as an equirectangular map of the "
            "whole sphere, which is 2:1 (W = 2H); crop or pad it, or read flat pictures on a flat grid "
            "(grid=planar, or data.npy_grid=planar)"
        )
    return array, "equirect", height, meta


def _write_image(path: Path, values: torch.Tensor, like: MapFile) -> None:
    from PIL import Image

    array = values.detach().cpu().double().clamp(0, 1).numpy()
    kind = "PNG" if path.name.lower().endswith(".png") else "JPEG"
    sixteen = like.meta.get("bits") == 16 and array.shape[0] == 1 and kind == "PNG"
    if array.shape[0] == 1:
        scale, dtype = (65535.0, np.uint16) if sixteen else (255.0, np.uint8)  # Pillow: I;16 or L
        image = Image.fromarray(np.round(array[0] * scale).astype(dtype))
    elif array.shape[0] == 3:
        image = Image.fromarray(np.round(array.transpose(1, 2, 0) * 255).astype(np.uint8))
    else:
        raise ShapeError(f"an image ({str(path)!r}) holds 1 (grey) or 3 (RGB) channels, got {array.shape[0]}")
    atomic_write(path, lambda handle: image.save(handle, format=kind, **({"quality": 95} if kind == "JPEG" else {})))


def _flat_size(path: Path, layout: Any, array: np.ndarray) -> Any:
    """The resolution of a flat ``(C, H, W)`` array on a flat grid: the side, or ``(H, W)``."""
    height, width = array.shape[-2:]
    for size in (height, (height, width)):
        with contextlib.suppress(GeoconvError):
            if tuple(layout.shape_at(1, array.shape[0], size)[2:]) == (height, width):
                return size
    raise GeoconvError(f"file {str(path)!r}: a {height}x{width} picture is not a signal of grid {layout.name!r}")


def _read_npy(path: Path, *, npy_grid: str | None = None, **_: Any) -> tuple[np.ndarray, str, Any, dict]:
    if npy_grid is None:
        raise GeoconvError(f"file {str(path)!r}: a .npy array needs the grid it is laid out on (npy_grid=NAME)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise GeoconvError(f"file {str(path)!r} cannot be read as a .npy array: {err}") from None
    if array.dtype.kind not in "biuf":
        raise GeoconvError(f"file {str(path)!r}: a map holds real numbers, got dtype {array.dtype}")
    layout, dtype = get_grid(npy_grid), str(array.dtype)
    spatial = len(layout.signal_shape(layout.default_size))
    squeezed = array.ndim == spatial
    array = np.asarray(array[None] if squeezed else array, dtype=np.float64)
    why = f"got shape {array.shape[int(squeezed) :]}"
    try:  # the grid's own message says what is wrong (a flat healpy map: how to make faces of it)
        layout.check(torch.from_numpy(array)[None] if array.ndim == spatial + 1 else torch.from_numpy(array), "array")
    except GeoconvError as err:
        why = str(err)
    if array.ndim != spatial + 1 or not why.startswith("got"):
        raise ShapeError(
            f"file {str(path)!r} is not a map on grid {layout.name!r}: expected (C, *spatial) or (*spatial) in the "
            f"layout {layout.layout}; {why}"
        )
    if layout.spherical:
        size = layout.resolution_of(torch.from_numpy(array)[None])  # type: ignore[attr-defined]
        size = size[0] if isinstance(size, tuple) and size[1] == 2 * size[0] else size
    else:
        size = _flat_size(path, layout, array)
    return array, layout.name, size, {"dtype": dtype, "squeezed": squeezed}


def _write_npy(path: Path, values: torch.Tensor, like: MapFile) -> None:
    array = values.detach().cpu().numpy()
    if like.meta.get("squeezed") and array.shape[0] == 1:
        array = array[0]
    atomic_write(path, lambda handle: np.save(handle, array))


def _signal_shape(grid: str, size: Any) -> tuple[int, ...]:
    return tuple(get_grid(grid).shape_at(1, 1, size)[2:])


def to_grid(map: MapFile, grid: str, size: Any) -> torch.Tensor:
    """The map's values on ``grid`` at ``size``: ``(C, *spatial)`` float32.

    The values themselves on the map's own grid and resolution; else :func:`geoconv.grids.convert`
    (bilinear at the target's pixel centres) between spherical grids. Flat maps are never resized.

    Raises
    ------
    GeoconvError
        Naming the file, both grids and both sizes, when no conversion exists.

    Examples
    --------
    >>> m = MapFile(Path("x.npy"), "npy", torch.ones(1, 4, 8), "equirect", 4, {})
    >>> to_grid(m, "equirect", 4) is m.values, tuple(to_grid(m, "cubemap", 2).shape)
    (True, (1, 6, 2, 2))
    """
    source, target = get_grid(map.grid), get_grid(grid)
    if source is target and _signal_shape(grid, size) == tuple(map.values.shape[1:]):
        return map.values
    if source.spherical and target.spherical:
        from geoconv.grids.conversion import convert

        return convert(map.values[None], source, target, size)[0]
    raise GeoconvError(
        f"file {str(map.path)!r} is a map on grid {map.grid!r} at size {map.size!r} (spatial shape "
        f"{tuple(map.values.shape[1:])}); it cannot be regridded to grid {grid!r} at size {size!r}: geoconv "
        "converts between spherical grids only, so resize flat pictures to one size first"
    )


def write_map(path: str | os.PathLike, values: torch.Tensor, like: MapFile) -> Path:
    """Write ``values`` to ``path`` in the format of ``like`` (a FITS map out for a FITS map in, ...).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (atomically; parent folders are created), with a suffix of ``like``'s format.
    values : torch.Tensor
        ``(C, *spatial)`` on ``like.grid`` at ``like.size``. Images take 1 (8-bit grey; 16-bit when
        ``like`` was a 16-bit PNG) or 3 (RGB) channels in ``[0, 1]`` (clipped).
    like : MapFile
        The map read from the file to imitate: FITS keeps its ordering, coordinate system
        and (same channel count) column names; NetCDF its variable, dims and coordinates.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib, healpy, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> healpy.write_map(str(folder / "in.fits"), np.arange(48.0), dtype=np.float32)
    >>> like = read_map(folder / "in.fits")
    >>> out = write_map(folder / "out" / "x.fits", 2 * like.values, like)
    >>> healpy.read_map(str(out))[:3].tolist()
    [0.0, 2.0, 4.0]
    >>> import shutil; shutil.rmtree(folder)
    """
    path = Path(path)
    if map_format(path) != like.format:
        raise GeoconvError(
            f"write_map writes a file like {str(like.path)!r} ({like.format}); {str(path)!r} has the suffix of "
            f"another format ({map_format(path)})"
        )
    if not isinstance(values, torch.Tensor) or values.dim() < 2:
        raise ShapeError(f"values for {str(path)!r} must be a tensor (C, *spatial), got {values!r:.80}")
    expected = _signal_shape(like.grid, like.size)
    if tuple(values.shape[1:]) != expected:
        raise ShapeError(
            f"values for {str(path)!r} must have shape (C, {', '.join(map(str, expected))}) (grid {like.grid!r} at "
            f"size {like.size!r}, like {str(like.path)!r}), got {tuple(values.shape)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = {"fits": _write_fits, "netcdf": _write_netcdf, "image": _write_image, "npy": _write_npy}[like.format]
    writer(path, values, like)
    return path
