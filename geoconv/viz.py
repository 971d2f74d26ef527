r"""Figures: an off-screen, atomic PNG writer every job and report uses, and maps of signals on any grid.

Figures are matplotlib ``Figure`` objects rendered by Agg outside pyplot: nothing is shown,
no global backend or pyplot state is touched, and nothing stays open.

=============================  ===========================================================
name                           what it does
=============================  ===========================================================
:func:`figure`                 whatever ``draw(figure)`` draws, saved atomically
:func:`plot_map`               one signal on any grid as a PNG, in a chosen :data:`VIEWS` view
:func:`plot_sphere_map`        the same for a spherical grid only (a flat grid is refused)
:func:`draw_sphere_map`        one spherical map on given axes (panels of a larger figure)
:func:`choose_view`            the view ``"auto"`` picks: centred on the signal, sized to it
:class:`SphereView`            a projection of the sphere onto a plane, both ways
:func:`sample_view`            a map sampled on a view's plane (the image that is drawn)
:func:`centre_of_mass`         the :math:`|x|`-weighted mean direction of a map
:func:`add_colorbar`           a colour bar with a few ticks that never overlap
=============================  ===========================================================

A map on the sphere is drawn by sampling it at the points of a projected plane: each image
pixel goes back through the inverse projection to a direction (colatitude, longitude), where
the grid's own bilinear :meth:`~geoconv.grids.sphere.SphericalGrid.interpolate` reads the
map. So every spherical grid (equirect, cube map, HEALPix, a plugin's) draws the same way,
with no cartopy and no healpy plotting (whose ``orthview``/``gnomview`` use pyplot).

Views (``view=``): ``"orthographic"`` (the sphere seen from afar) and ``"gnomonic"`` (central
projection, for small extents) centred on a direction; ``"mollweide"`` (equal-area, the whole
sphere) and ``"latlon"`` centred on a meridian; ``"native"``, the grid's own
:meth:`~geoconv.grids.Grid.draw_map`; and ``"auto"`` (:func:`choose_view`): a *localised*
signal (90 % of :math:`|x|` within :data:`LOCAL_RADIUS` of its :func:`centre_of_mass`, e.g. a
receptive field) is drawn orthographic (gnomonic when small) centred on that direction and
sized to its support; a *global* one (a whole-sphere data map) in Mollweide, its central
meridian chosen so that the seam crosses the longitudes where least of the signal lies.
Images have east to the right and north up, as seen from outside the sphere.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = figure(Path(folder) / "line.png", lambda fig: fig.subplots().plot([0, 1], [1, 0]))
...     path.stat().st_size > 0
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoconv._io import atomic_write
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids import Grid, get_grid
from geoconv.grids.conversion import spherical_grid
from geoconv.grids.sphere import SphericalGrid, angles_to_vectors, vectors_to_angles

__all__ = [
    "LOCAL_RADIUS",
    "VIEWS",
    "SphereView",
    "add_colorbar",
    "centre_of_mass",
    "choose_view",
    "draw_sphere_map",
    "figure",
    "plot_map",
    "plot_sphere_map",
    "sample_view",
]

VIEWS = ("auto", "orthographic", "gnomonic", "mollweide", "latlon", "native")
"""The views a map may be drawn in (``view=``); see the module docstring."""

LOCAL_RADIUS = math.radians(60.0)
"""``"auto"`` draws a map as local when 90 % of its :math:`|x|` lies within this angle of its centre."""

_GNOMONIC_BELOW = math.radians(35.0)  # auto: half-widths up to this are drawn gnomonic
_SQRT2 = math.sqrt(2.0)


def figure(path: str | Path, draw: Callable[[Any], None], *, size: tuple[float, float] = (6.0, 4.0)) -> Path:
    """Draw with ``draw(figure)`` on an off-screen figure and save it as a PNG, atomically.

    The PNG goes into a temporary file beside ``path`` and is renamed over it
    (:func:`geoconv._io.atomic_write`): a run killed while saving leaves the previous
    figure or none, never a truncated PNG. Parent folders are created.
    """
    # Imported here: plotting is optional work, and matplotlib is slow to import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    try:
        draw(figure)
        atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    finally:
        figure.clear()
    return Path(path)


# -- projections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SphereView:
    r"""A projection of the sphere onto a plane, with its centre and extent.

    Parameters
    ----------
    projection : str
        ``"orthographic"``, ``"gnomonic"``, ``"mollweide"`` or ``"latlon"``.
    centre : (float, float)
        ``(colatitude, longitude)`` in radians of the point drawn in the middle. Mollweide
        and lat-lon views use only the longitude (their central meridian).
    radius : float
        Orthographic and gnomonic views: the angular half-width shown (radians), at most
        :math:`\pi/2` (orthographic: a hemisphere) or 80° (gnomonic); the others ignore it.

    Notes
    -----
    With :math:`c` the centre, :math:`e = (-\sin\phi_0, \cos\phi_0, 0)` (east) and
    :math:`n = c \times e` (north), a unit vector :math:`p` lands at

    - orthographic: :math:`(x, y) = (p\cdot e,\ p\cdot n)`, visible where :math:`p\cdot c \ge 0`;
    - gnomonic: :math:`(x, y) = (p\cdot e,\ p\cdot n) / (p\cdot c)`, visible where :math:`p\cdot c > 0`;
    - Mollweide: :math:`x = \frac{2\sqrt2}{\pi}\Delta\phi\cos\alpha`, :math:`y = \sqrt2\sin\alpha`,
      :math:`2\alpha + \sin 2\alpha = \pi\sin(\text{lat})`, :math:`\Delta\phi \in [-\pi, \pi)`;
    - lat-lon: :math:`(x, y) = (\Delta\phi, \text{lat})` in degrees.

    Examples
    --------
    >>> view = SphereView("orthographic", (np.pi / 2, 0.0), np.pi / 2)
    >>> colat, lon, valid = view.to_sphere(np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    >>> np.degrees(colat).round(6).tolist(), np.degrees(lon).round(6).tolist(), valid.tolist()
    ([90.0, 90.0], [0.0, 90.0], [True, True])
    """

    projection: str
    centre: tuple[float, float] = (math.pi / 2, 0.0)
    radius: float = math.pi / 2

    def __post_init__(self) -> None:
        if self.projection not in VIEWS[1:5]:
            raise ParameterError(f"projection must be one of {VIEWS[1:5]}, got {self.projection!r}")
        limit = math.radians(80.0) if self.projection == "gnomonic" else math.pi / 2
        if not 0 < self.radius <= limit + 1e-12:
            raise ParameterError(f"radius must lie in (0, {limit:.4f}] for a {self.projection} view, got {self.radius}")

    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        colat, lon = self.centre
        centre = angles_to_vectors(np.float64(colat), np.float64(lon))
        east = np.array([-math.sin(lon), math.cos(lon), 0.0])
        return centre, east, np.cross(centre, east)

    def extent(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` of the plane shown (matplotlib's ``imshow`` extent)."""
        if self.projection == "mollweide":
            return (-2 * _SQRT2, 2 * _SQRT2, -_SQRT2, _SQRT2)
        if self.projection == "latlon":
            return (-180.0, 180.0, -90.0, 90.0)
        half = math.sin(self.radius) if self.projection == "orthographic" else math.tan(self.radius)
        return (-half, half, -half, half)

    def to_sphere(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colatitude, longitude (radians, longitude in ``[0, 2 pi)``) and validity of plane points ``(x, y)``."""
        x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        lon0 = self.centre[1]
        if self.projection == "latlon":
            colat = np.pi / 2 - np.radians(y)
            return np.clip(colat, 0, np.pi), np.mod(lon0 + np.radians(x), 2 * np.pi), np.abs(y) <= 90
        if self.projection == "mollweide":
            valid = (x / (2 * _SQRT2)) ** 2 + (y / _SQRT2) ** 2 <= 1 + 1e-12
            alpha = np.arcsin(np.clip(y / _SQRT2, -1, 1))
            lat = np.arcsin(np.clip((2 * alpha + np.sin(2 * alpha)) / np.pi, -1, 1))
            cos = np.maximum(np.cos(alpha), 1e-12)
            return np.pi / 2 - lat, np.mod(lon0 + np.pi * x / (2 * _SQRT2 * cos), 2 * np.pi), valid
        centre, east, north = self._frame()
        if self.projection == "orthographic":
            rho2 = x**2 + y**2
            valid = rho2 <= 1 + 1e-12
            depth = np.sqrt(np.clip(1 - rho2, 0, None))
        else:
            valid, depth = np.ones(x.shape, dtype=bool), np.ones(x.shape)
        points = depth[..., None] * centre + x[..., None] * east + y[..., None] * north
        colat, lon = vectors_to_angles(points)
        return colat, lon, valid

    def to_plane(self, colat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plane coordinates ``x``, ``y`` of directions (radians) and whether each is on the visible side."""
        colat, lon = np.broadcast_arrays(np.asarray(colat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
        shift = np.mod(lon - self.centre[1] + np.pi, 2 * np.pi) - np.pi  # [-pi, pi)
        lat = np.pi / 2 - colat
        if self.projection == "latlon":
            return np.degrees(shift), np.degrees(lat), np.ones(colat.shape, dtype=bool)
        if self.projection == "mollweide":
            alpha, target = lat.copy(), np.pi * np.sin(lat)
            for _ in range(30):  # Newton on 2a + sin 2a = pi sin(lat); flat at the poles, hence the guard
                alpha -= (2 * alpha + np.sin(2 * alpha) - target) / np.maximum(2 + 2 * np.cos(2 * alpha), 1e-9)
                alpha = np.clip(alpha, -np.pi / 2, np.pi / 2)
            x = 2 * _SQRT2 / np.pi * shift * np.cos(alpha)
            return x, _SQRT2 * np.sin(alpha), np.ones(colat.shape, dtype=bool)
        centre, east, north = self._frame()
        points = angles_to_vectors(colat, lon)
        depth = points @ centre
        if self.projection == "orthographic":
            return points @ east, points @ north, depth >= 0
        safe = np.where(depth > 1e-9, depth, 1.0)
        return points @ east / safe, points @ north / safe, depth > 1e-9

    def plane(self, pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centred plane points ``(rows, cols)`` covering :meth:`extent`, row 0 at the top (north).

        ``pixels`` is the number of rows; Mollweide and lat-lon planes are twice as wide.
        """
        left, right, bottom, top = self.extent()
        rows = max(int(pixels), 2)
        cols = rows * (2 if self.projection in ("mollweide", "latlon") else 1)
        x = left + (np.arange(cols) + 0.5) * (right - left) / cols
        y = top - (np.arange(rows) + 0.5) * (top - bottom) / rows
        return np.meshgrid(x, y)

    def describe(self) -> str:
        """A short label: the projection and its centre in latitude and longitude (degrees)."""
        lat, lon = 90.0 - math.degrees(self.centre[0]), math.degrees(self.centre[1]) % 360.0
        if self.projection in ("mollweide", "latlon"):
            return f"{self.projection}, central meridian {lon:.0f}°E"
        return f"{self.projection}, centre {lat:+.1f}° lat, {lon:.1f}°E, radius {math.degrees(self.radius):.0f}°"


def _signal(values: torch.Tensor | np.ndarray, grid: Grid, size: object, channels: bool = False) -> np.ndarray:
    """``values`` as float64 numpy, checked against the grid's signal shape (an optional channel dim first)."""
    try:
        expected = grid.signal_shape(size)
    except GeoconvError as err:
        if "size" in str(err):
            raise
        raise type(err)(f"size for grid {grid.name!r}: {err}") from None
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.shape != expected and not (channels and values.shape[1:] == expected):
        extra = " (or (C, *that) with channels first)" if channels else ""
        raise ShapeError(
            f"values must have the spatial shape {expected} of grid {grid.name!r} ({grid.layout} without B and C)"
            f"{extra} at size {size!r}, got shape {values.shape}"
        )
    return values


def _weights_and_vectors(values: np.ndarray, grid: SphericalGrid, size: object) -> tuple[np.ndarray, np.ndarray]:
    weights = np.nan_to_num(np.abs(values), nan=0.0, posinf=0.0).reshape(-1)
    return weights, grid.vectors(grid.resolution(size)).reshape(-1, 3)


def centre_of_mass(values: torch.Tensor | np.ndarray, grid: str | Grid, size: object) -> np.ndarray:
    r"""The :math:`|x|`-weighted mean direction of a map's pixel centres, normalised: a unit vector ``(3,)``.

    .. math:: c = \frac{\sum_p |x_p|\, \hat n_p}{\left\lVert \sum_p |x_p|\, \hat n_p \right\rVert}

    Vectors, not angles, are averaged, so a signal straddling longitude 0°/360° or a pole has
    its centre where it is.

    Raises
    ------
    ParameterError
        When the map has no mass or its weighted directions cancel (a map spread evenly over
        the sphere has no centre).

    Examples
    --------
    >>> x = np.zeros((4, 8)); x[1, 1] = x[1, 7] = 1.0  # longitudes 45° and 315°, colatitude 67.5°
    >>> (np.round(centre_of_mass(x, "equirect", 4), 6) + 0.0).tolist()  # on the meridian 0°, north
    [0.862856, 0.0, 0.505449]
    """
    sphere = spherical_grid(grid, "centre_of_mass")
    weights, vectors = _weights_and_vectors(_signal(values, sphere, size), sphere, size)
    total = weights @ vectors
    norm = float(np.linalg.norm(total))
    if not norm > 1e-9 * max(float(weights.sum()), 1e-300):
        raise ParameterError("values have no centre of mass: no |x| anywhere, or spread evenly over the sphere")
    return total / norm


def _mass_radius(weights: np.ndarray, vectors: np.ndarray, centre: np.ndarray, fraction: float) -> float:
    """The smallest angle from ``centre`` within which ``fraction`` of the weights lie (radians)."""
    angles = np.arccos(np.clip(vectors @ centre, -1.0, 1.0))
    order = np.argsort(angles)
    cumulative = np.cumsum(weights[order])
    return float(angles[order][np.searchsorted(cumulative, fraction * cumulative[-1])])


def _quiet_meridian(weights: np.ndarray, vectors: np.ndarray, bins: int = 36) -> float:
    """A central meridian (radians) whose opposite meridian, the seam, crosses the least weight.

    Ties (a uniform or empty map) keep the seam at 180°, i.e. the central meridian at 0°.
    """
    lon = np.mod(np.arctan2(vectors[:, 1], vectors[:, 0]), 2 * np.pi)
    mass = np.bincount((lon / (2 * np.pi) * bins).astype(int) % bins, weights=weights, minlength=bins)
    mass = mass + 0.5 * (np.roll(mass, 1) + np.roll(mass, -1))  # the seam should not graze a neighbour either
    order = np.roll(np.arange(bins), -(bins // 2))  # start at the 180° bin: ties go to it
    seam = order[np.argmin(mass[order])]
    if mass[seam] >= mass[bins // 2] * (1 - 1e-9):
        return 0.0
    return float(np.mod((seam + 0.5) * 2 * np.pi / bins + np.pi, 2 * np.pi))


def choose_view(values: torch.Tensor | np.ndarray, grid: str | Grid, size: object, view: str = "auto") -> SphereView:
    r"""The :class:`SphereView` a map is drawn in for ``view`` (one of :data:`VIEWS` but ``"native"``).

    ``"auto"``: with :math:`c` the :func:`centre_of_mass` and :math:`r_q` the angle around
    :math:`c` holding a fraction :math:`q` of :math:`|x|`, a map with :math:`r_{0.9} \le`
    :data:`LOCAL_RADIUS` is local: the half-width is :math:`1.25\,r_{0.98}` plus two pixel
    pitches (at most 90°), gnomonic up to 35°, orthographic beyond. Any other map is global:
    Mollweide with the seam on the meridian crossing the least :math:`|x - \mathrm{median}(x)|`.
    A named local projection is centred on :math:`c` (on the map's point of largest
    :math:`|x|` when it has no centre) with the same extent; a named global one on the same
    meridian as ``"auto"``'s.

    Examples
    --------
    >>> x = np.zeros((16, 32)); x[8, 4] = 1.0  # one pixel at longitude 45°, just south of the equator
    >>> view = choose_view(x, "equirect", 16)
    >>> view.projection, np.degrees(view.centre).round(2).tolist(), round(float(np.degrees(view.radius)), 1)
    ('gnomonic', [95.62, 45.0], 22.5)
    >>> choose_view(np.ones((16, 32)), "equirect", 16).projection
    'mollweide'
    """
    sphere = spherical_grid(grid, "choose_view")
    values = _signal(values, sphere, size)
    if view not in VIEWS[:5]:
        raise ParameterError(f"view must be one of {VIEWS[:5]} here, got {view!r}")
    weights, vectors = _weights_and_vectors(values, sphere, size)
    try:
        centre = centre_of_mass(values, sphere, size)
        local = _mass_radius(weights, vectors, centre, 0.9) <= LOCAL_RADIUS
    except ParameterError:
        centre, local = vectors[int(np.argmax(weights))], False
    radius = min(math.pi / 2, 1.25 * _mass_radius(weights, vectors, centre, 0.98) + 2 * sphere.pixel_pitch(size))
    if view == "auto" and local:
        view = "gnomonic" if radius <= _GNOMONIC_BELOW else "orthographic"
    if view in ("orthographic", "gnomonic"):
        radius = radius if local else math.pi / 2
        limit = math.radians(80.0) if view == "gnomonic" else math.pi / 2
        return SphereView(view, tuple(float(a) for a in vectors_to_angles(centre)), min(radius, limit))
    spread = np.abs(np.nan_to_num(values) - np.nanmedian(values)).reshape(-1) if values.size else weights
    meridian = _quiet_meridian(spread, vectors)
    return SphereView("latlon" if view == "latlon" else "mollweide", (math.pi / 2, meridian))


def sample_view(
    values: torch.Tensor | np.ndarray, grid: str | Grid, size: object, view: SphereView, *, pixels: int = 300
) -> np.ndarray:
    """A map sampled on ``view``'s plane (:meth:`SphereView.plane`) by the grid's bilinear interpolation.

    Parameters
    ----------
    values : torch.Tensor or numpy.ndarray
        One signal, ``(*spatial)``, or channels of it, ``(C, *spatial)``.
    grid, size
        A registered spherical grid and the map's resolution.
    view : SphereView
        Where to look.
    pixels : int
        Rows of the image (Mollweide and lat-lon images are twice as wide).

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` or ``(rows, cols, C)`` float64, row 0 at the top, NaN off the sphere.

    Examples
    --------
    >>> colat, _ = get_grid("healpix").centres(8)
    >>> view = SphereView("orthographic", (0.3, 1.0), 0.5)
    >>> image = sample_view(np.cos(colat), "healpix", 8, view, pixels=9)
    >>> round(float(image[4, 4]), 3), round(math.cos(0.3), 3)  # the middle of the image is the centre
    (0.955, 0.955)
    """
    sphere = spherical_grid(grid, "sample_view")
    values = _signal(values, sphere, size, channels=True)
    stacked = values if values.ndim > sphere.spatial_ndim else values[None]
    x, y = view.plane(pixels)
    colat, lon, valid = view.to_sphere(x, y)
    image = np.full((*x.shape, stacked.shape[0]), np.nan)
    if valid.any():
        signal = torch.from_numpy(np.ascontiguousarray(stacked))[None]
        image[valid] = sphere.interpolate(signal, colat[valid], lon[valid])[0].T.numpy()
    return image if values.ndim > sphere.spatial_ndim else image[..., 0]


# -- drawing ----------------------------------------------------------------------------------


def add_colorbar(figure: Any, image: Any, axes: Any, label: str = "", *, ticks: int = 5, **kwargs: Any) -> Any:
    """A colour bar for ``image`` beside ``axes`` with at most ``ticks`` + 1 ticks and a shared power of ten.

    Large or small numbers show as plain ticks with one ``×10^k`` offset above the bar, so
    tick labels stay short and never overlap.
    """
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    bar = figure.colorbar(image, ax=axes, **({"shrink": 0.85} | kwargs))
    formatter = ScalarFormatter(useMathText=True)
    formatter.set_powerlimits((-2, 3))
    bar.locator, bar.formatter = MaxNLocator(nbins=ticks), formatter
    bar.update_ticks()
    if label:
        bar.set_label(label)
    return bar


def _graticule(axes: Any, view: SphereView, step: float = 30.0) -> None:
    """Parallels and meridians every ``step`` degrees, and the outline of the sphere."""
    fine = np.radians(np.linspace(0.0, 360.0, 721))
    lines = [(np.full_like(fine, math.radians(90 - lat)), fine) for lat in np.arange(-90 + step, 90, step)]
    lines += [
        (np.linspace(1e-6, math.pi - 1e-6, 361), np.full(361, math.radians(lon))) for lon in np.arange(0, 360, step)
    ]
    left, right, bottom, top = view.extent()
    for colat, lon in lines:
        x, y, visible = view.to_plane(colat, lon)
        x, y = np.where(visible, x, np.nan), np.where(visible, y, np.nan)
        jump = np.abs(np.diff(x)) > 0.5 * (right - left)  # a parallel crossing the seam
        x[1:][jump] = np.nan
        axes.plot(x, y, color="0.5", lw=0.6, alpha=0.6)
    t = np.linspace(0, 2 * np.pi, 361)
    if view.projection == "orthographic":
        axes.plot(np.cos(t), np.sin(t), color="0.3", lw=0.8)
    elif view.projection == "mollweide":
        axes.plot(2 * _SQRT2 * np.cos(t), _SQRT2 * np.sin(t), color="0.3", lw=0.8)
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)


def draw_sphere_map(
    axes: Any,
    values: torch.Tensor | np.ndarray,
    grid: str | Grid,
    size: object,
    *,
    view: str | SphereView = "auto",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    pixels: int = 300,
    graticule: bool = True,
    mark: tuple[float, float] | None = None,
    label: bool = True,
) -> Any:
    """Draw one spherical map on ``axes``; returns the ``AxesImage`` (for :func:`add_colorbar`).

    Parameters
    ----------
    axes : matplotlib.axes.Axes
        Where to draw.
    values : torch.Tensor or numpy.ndarray
        ``(*spatial)``, or ``(3, *spatial)`` RGB in [0, 1] drawn as colours.
    grid, size
        A spherical grid and the map's resolution.
    view : str or SphereView
        One of :data:`VIEWS` but ``"native"`` (chosen by :func:`choose_view`, from the first
        channel's magnitude for RGB), or a view to share between panels.
    cmap, vmin, vmax
        Colour map and limits (the image's finite range by default).
    pixels : int
        Rows of the sampled image.
    graticule : bool
        Parallels and meridians every 30°.
    mark : (float, float), optional
        ``(colatitude, longitude)`` in radians of a point to mark with a cross (when visible).
    label : bool
        Title the axes with the view (:meth:`SphereView.describe`).
    """
    sphere = spherical_grid(grid, "draw_sphere_map")
    values = _signal(values, sphere, size, channels=True)
    rgb = values.ndim > sphere.spatial_ndim
    if not isinstance(view, SphereView):
        view = choose_view(np.linalg.norm(values, axis=0) if rgb else values, sphere, size, view)
    image = sample_view(values, sphere, size, view, pixels=pixels)
    if rgb:  # transparent off the sphere
        image = np.concatenate([np.clip(np.nan_to_num(image), 0, 1), np.isfinite(image[..., :1]).astype(float)], -1)
    drawn = axes.imshow(
        image, extent=view.extent(), origin="upper", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    if graticule:
        _graticule(axes, view)
    if mark is not None:
        x, y, visible = view.to_plane(*mark)
        if bool(visible):
            axes.plot(float(x), float(y), "+", color="red", ms=12, mew=1.5)
    axes.set_aspect("equal")
    if view.projection == "latlon":
        ticks = np.arange(-180, 181, 60)
        axes.set_xticks(ticks, [f"{(t + math.degrees(view.centre[1])) % 360:.0f}°" for t in ticks])
        axes.set_yticks(np.arange(-90, 91, 30), [f"{t}°" for t in range(-90, 91, 30)])
        axes.set_xlabel("longitude (east)")
        axes.set_ylabel("latitude")
    else:
        axes.set_axis_off()
    if label:
        axes.set_title(view.describe(), fontsize=8)
    return drawn


def plot_map(
    values: torch.Tensor | np.ndarray,
    grid: str | Grid,
    size: object,
    path: str | Path,
    title: str = "",
    *,
    cmap: str = "viridis",
    view: str = "auto",
    mark: tuple[float, float] | None = None,
    label: str = "",
) -> Path:
    """Save one signal on a grid as a PNG at ``path``; returns ``path``.

    A spherical grid's map is drawn in ``view`` (:data:`VIEWS`; ``"auto"`` centres it on what
    it shows, see the module docstring) with a 30° graticule and a colour bar, or the grid's
    own way with ``view="native"`` (:meth:`~geoconv.grids.Grid.draw_map`: HEALPix on healpy's
    Mollweide axes, the others as a latitude-longitude image). A flat grid is drawn its own
    way (an image of its faces); it has no other view.

    Parameters
    ----------
    values : torch.Tensor or numpy.ndarray
        One signal in the grid's layout at ``size``, without batch and channel dims:
        :meth:`~geoconv.grids.Grid.signal_shape`, e.g. ``(H, W)``, ``(6, F, F)``, ``(12, n, n)``.
    grid, size : str or Grid, int or (int, int)
        A registered grid and the map's resolution.
    path : str or pathlib.Path
        Where to write the PNG (parent folders are created; written atomically).
    title, cmap, view : str
        The figure's title, a matplotlib colour map, one of :data:`VIEWS`.
    mark : (float, float), optional
        ``(colatitude, longitude)`` (radians) to mark with a cross, e.g. where an ERF was probed.
    label : str
        The colour bar's label.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = plot_map(np.random.rand(6, 4, 4), "cubemap", 4, Path(folder) / "map.png", "noise")
    ...     out.stat().st_size > 0
    True
    """
    grid = get_grid(grid)
    values = _signal(values, grid, size)
    if view not in VIEWS:
        raise ParameterError(f"view must be one of {VIEWS}, got {view!r}")
    if not isinstance(grid, SphericalGrid) or view == "native":
        if view not in ("auto", "native"):
            raise ParameterError(f"grid {grid.name!r} is flat ({grid.layout}): view must be 'auto' or 'native'")

        def native(canvas: Any) -> None:
            grid.draw_map(canvas, values, size, cmap=cmap)
            if title:
                canvas.suptitle(title)

        return figure(path, native)
    chosen = choose_view(values, grid, size, view)

    def draw(canvas: Any) -> None:
        axes = canvas.subplots()
        image = draw_sphere_map(axes, values, grid, size, view=chosen, cmap=cmap, mark=mark)
        add_colorbar(canvas, image, axes, label)
        if title:
            canvas.suptitle(title)

    wide = chosen.projection in ("mollweide", "latlon")
    return figure(path, draw, size=(8.0, 4.6) if wide else (5.8, 5.0))


def plot_sphere_map(
    values: torch.Tensor | np.ndarray, grid: str | Grid, size: object, path: str | Path, title: str = "", **options: Any
) -> Path:
    """:func:`plot_map` for a spherical grid (a flat grid is refused); ``options`` are :func:`plot_map`'s keywords.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = plot_sphere_map(np.random.rand(12, 4, 4), "healpix", 4, Path(folder) / "map.png", "noise")
    ...     out.stat().st_size > 0
    True
    """
    return plot_map(values, spherical_grid(grid, "plot_sphere_map"), size, path, title, **options)
