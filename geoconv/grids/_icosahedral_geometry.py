r"""The numpy geometry behind :mod:`geoconv.grids.icosahedral` (private).

The base icosahedron and its five charts, the subdivided lattice, the owner of every lattice
point, the ``ico`` padding table (by unfolding the icosahedron around a chart), the
interpolation table and the pixel areas. Everything here is numpy on the CPU; the
conventions are those of the module docstring of :mod:`geoconv.grids.icosahedral`.

Lattice coordinates
-------------------
A chart is the parallelogram :math:`\{U_k + \sigma\,e + \tau\,g : \sigma \in [0, 1],\
\tau \in [0, 2]\}` of the unfolded icosahedron, with :math:`e` the edge :math:`U_k \to N`
and :math:`g` the edge :math:`U_k \to L_k` (120° apart). At level ``r`` the lattice
points are ``(s, t)`` = :math:`n (\sigma, \tau)`, ``n = 2**r``, integers; lattice
neighbours differ by :math:`\pm(1, 0)`, :math:`\pm(0, 1)` or :math:`\pm(1, 1)` (the edges
:math:`e`, :math:`g` and :math:`e + g`, the third side of each small triangle). Pixel
``(i, j)`` of the chart is the lattice point ``(s, t) = (n - 1 - i, j)``.
"""

from __future__ import annotations

import functools
import math
from collections import deque

import numpy as np

from geoconv.grids._gather import PadTable

__all__ = [
    "N_POLE",
    "S_POLE",
    "base_vertices",
    "chart_faces",
    "closed_lattice",
    "dual_areas",
    "interpolation_table",
    "owner",
    "pad_table",
    "pixel_vectors",
    "pole_neighbours",
]

N_POLE, S_POLE = -1, -2
"""Owner codes of the two polar vertices, which are not pixels."""

_CHARTS = 5

_SNAP = 1e-10
"""Interpolation weights below this are taken as zero (round-off at a vertex)."""


def _unit(colat: float, lon: float) -> np.ndarray:
    return np.array([math.sin(colat) * math.cos(lon), math.sin(colat) * math.sin(lon), math.cos(colat)])


@functools.lru_cache(maxsize=1)
def base_vertices() -> np.ndarray:
    r"""The 12 vertices ``(12, 3)``: ``N``, ``U_0..U_4``, ``L_0..L_4``, ``S`` (ids 0, 1-5, 6-10, 11).

    :math:`U_k` at colatitude :math:`\arctan 2` and longitude :math:`72° k`, :math:`L_k` at
    :math:`\pi - \arctan 2` and :math:`72° k + 36°` (read-only).
    """
    ring = math.atan(2.0)
    vertices = [_unit(0.0, 0.0)]
    vertices += [_unit(ring, 2 * math.pi * k / _CHARTS) for k in range(_CHARTS)]
    vertices += [_unit(math.pi - ring, 2 * math.pi * (k + 0.5) / _CHARTS) for k in range(_CHARTS)]
    vertices.append(_unit(math.pi, 0.0))
    out = np.array(vertices)
    out.flags.writeable = False
    return out


def chart_faces(chart: int) -> tuple[tuple[tuple[int, ...], tuple[tuple[int, int], ...]], ...]:
    """The 4 faces of ``chart``: vertex ids and their corners ``(sigma, tau)`` in the chart, north to south.

    >>> chart_faces(0)[0]
    ((0, 1, 2), ((1, 0), (0, 0), (1, 1)))
    """
    k, nxt = chart % _CHARTS, (chart + 1) % _CHARTS
    north, u0, u1, l0, l1, south = 0, 1 + k, 1 + nxt, 6 + k, 6 + nxt, 11
    return (
        ((north, u0, u1), ((1, 0), (0, 0), (1, 1))),
        ((u0, u1, l0), ((0, 0), (1, 1), (0, 1))),
        ((u1, l0, l1), ((1, 1), (0, 1), (1, 2))),
        ((l0, l1, south), ((0, 1), (1, 2), (0, 2))),
    )


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _refine(grid: np.ndarray) -> np.ndarray:
    """One subdivision: the normalised midpoint of every lattice edge ``(1, 0)``, ``(0, 1)``, ``(1, 1)``."""
    a, b = grid.shape[:2]
    out = np.empty((2 * a - 1, 2 * b - 1, 3))
    out[::2, ::2] = grid
    out[1::2, ::2] = _normalise(grid[:-1] + grid[1:])
    out[::2, 1::2] = _normalise(grid[:, :-1] + grid[:, 1:])
    out[1::2, 1::2] = _normalise(grid[:-1, :-1] + grid[1:, 1:])
    return out


@functools.lru_cache(maxsize=8)
def closed_lattice(level: int) -> np.ndarray:
    """Unit vectors of every lattice point of every closed chart, ``(5, n + 1, 2n + 1, 3)`` indexed ``[k, s, t]``.

    Level 0 is the icosahedron; each level replaces every triangle by four, the new vertices
    the normalised midpoints of the edges (read-only).
    """
    v = base_vertices()
    charts = []
    for k in range(_CHARTS):
        nxt = (k + 1) % _CHARTS
        grid = np.array([[v[1 + k], v[6 + k], v[11]], [v[0], v[1 + nxt], v[6 + nxt]]])
        for _ in range(level):
            grid = _refine(grid)
        charts.append(grid)
    out = np.stack(charts)
    out.flags.writeable = False
    return out


def pixel_vectors(level: int) -> np.ndarray:
    """Unit vectors of the pixels, ``(5, n, 2n, 3)``: pixel ``(i, j)`` is lattice point ``(n - 1 - i, j)``."""
    n = 2**level
    return np.ascontiguousarray(closed_lattice(level)[:, n - 1 :: -1, : 2 * n])


def owner(n: int, chart: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The flat pixel index (in ``(5, n, 2n)``) of closed-chart lattice points, or a pole code.

    A chart owns its points with ``s < n`` and ``t < 2n``; its side ``s = n`` and its edge
    ``t = 2n`` are chart ``k + 1``'s column ``t' = 0`` and row ``s' = 0``.
    """
    chart, s, t = np.broadcast_arrays(np.asarray(chart), np.asarray(s), np.asarray(t))
    nxt = (chart + 1) % _CHARTS
    upper = (s == n) & (t <= n)  # N .. U_{k+1}: chart k+1's edge t' = 0, s' = n - t
    middle = (s == n) & (t > n)  # U_{k+1} .. L_{k+1}: chart k+1's side s' = 0, t' = t - n
    lower = (t == 2 * n) & (s < n)  # S .. L_{k+1}: chart k+1's side s' = 0, t' = 2n - s
    k2 = np.where(upper | middle | lower, nxt, chart)
    s2 = np.where(upper, n - t, np.where(middle | lower, 0, s))
    t2 = np.where(upper, 0, np.where(middle, t - n, np.where(lower, 2 * n - s, t)))
    code = k2 * (2 * n * n) + (n - 1 - s2) * (2 * n) + t2
    code = np.where((s == n) & (t == 0), N_POLE, code)
    return np.where((s == 0) & (t == 2 * n), S_POLE, code)


def pole_neighbours(n: int, pole: int) -> np.ndarray:
    """The flat indices of the 5 pixels next to a pole: ``(k, 0, 0)`` for ``N``, ``(k, n - 1, 2n - 1)`` for ``S``."""
    charts = np.arange(_CHARTS) * (2 * n * n)
    return charts if pole == N_POLE else charts + (n - 1) * 2 * n + 2 * n - 1


def _expand(codes: np.ndarray, weights: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (code, weight) pairs ``(R, m)`` as pixel taps ``(R, K)``: a pole is the mean of its 5 neighbours.

    Equal pixels are merged; unused slots repeat the row's first pixel with weight 0.
    """
    rows_total = codes.shape[0]
    rows = np.repeat(np.arange(rows_total), codes.shape[1])
    codes, weights = codes.reshape(-1), weights.reshape(-1)
    live = weights > 0
    rows, codes, weights = rows[live], codes[live], weights[live]
    pixel_rows, pixel_codes, pixel_weights = [rows[codes >= 0]], [codes[codes >= 0]], [weights[codes >= 0]]
    for pole in (N_POLE, S_POLE):
        at = codes == pole
        pixel_rows.append(np.repeat(rows[at], 5))
        pixel_codes.append(np.tile(pole_neighbours(n, pole), int(at.sum())))
        pixel_weights.append(np.repeat(weights[at] / 5, 5))
    rows, codes, weights = (np.concatenate(part) for part in (pixel_rows, pixel_codes, pixel_weights))
    pairs, inverse = np.unique(np.stack([rows, codes]), axis=1, return_inverse=True)
    merged = np.bincount(inverse.reshape(-1), weights=weights)
    count = np.bincount(pairs[0], minlength=rows_total)
    if count.min() < 1:
        raise AssertionError("a row of the table has no tap")
    taps = int(count.max())
    slot = np.arange(pairs.shape[1]) - np.repeat(np.cumsum(count) - count, count)
    index = np.repeat(pairs[1][np.cumsum(count) - count][:, None], taps, axis=1)
    weight = np.zeros(index.shape)
    index[pairs[0], slot] = pairs[1]
    weight[pairs[0], slot] = merged
    return index, weight


# -- the ico padding: the icosahedron unfolded around chart 0 ------------------------------------


@functools.lru_cache(maxsize=1)
def _edge_faces() -> dict[frozenset[int], tuple[int, ...]]:
    found: dict[frozenset[int], list[int]] = {}
    for face in range(4 * _CHARTS):
        ids = chart_faces(face // 4)[face % 4][0]
        for a in range(3):
            found.setdefault(frozenset((ids[a], ids[(a + 1) % 3])), []).append(face)
    return {edge: tuple(faces) for edge, faces in found.items()}


def _home(face: int, n: int) -> dict[int, np.ndarray]:
    """The lattice corners of ``face`` in its own chart, by vertex id."""
    ids, corners = chart_faces(face // 4)[face % 4]
    return {v: n * np.array(c) for v, c in zip(ids, corners, strict=True)}


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _covered(n: int, face: int, corners: dict[int, np.ndarray], point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lattice points ``point`` ``(P, 2)`` inside a placed face: their positions and owner codes."""
    home = _home(face, n)
    va, vb, vc = corners
    u, w = (corners[vb] - corners[va]) // n, (corners[vc] - corners[va]) // n
    det = int(_cross(u, w))  # +-1: a lattice triangle
    rel = point - corners[va]
    x, y = _cross(rel, w) * det, _cross(u, rel) * det  # point = a + x u + y w: barycentric x / n, y / n
    inside = np.flatnonzero((x >= 0) & (y >= 0) & (x + y <= n))
    if not inside.size:
        return inside, inside
    x, y = x[inside, None], y[inside, None]
    at = home[va] + (x * (home[vb] - home[va]) + y * (home[vc] - home[va])) // n
    return inside, owner(n, face // 4, at[:, 0], at[:, 1])


def _unfold(n: int, point: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Unfold the icosahedron into chart 0's lattice plane: ``(depth, inside, code)`` per face laid down.

    Breadth first from chart 0's own 4 faces (depth 0): each step lays a face flat across an
    edge beside the face it was reached from, the fourth corner of their rhombus at
    ``a + b - c``; ``depth`` counts the edges crossed. Around the 12 vertices only 5
    triangles meet, so the same face lands in several places, each laid down separately.
    A face laid down on none of the padded lattice points ``point`` ``(P, 2)`` is not
    unfolded further; ``inside`` are the points it covers, ``code`` their owners.
    """
    queue = deque((0, face, _home(face, n)) for face in range(4))
    seen = {(face, tuple(sorted((v, tuple(c)) for v, c in corners.items()))) for _, face, corners in queue}
    found = []
    while queue:
        depth, face, corners = queue.popleft()
        inside, code = _covered(n, face, corners, point)
        if depth and not inside.size:
            continue
        found.append((depth, inside, code))
        ids = list(corners)
        for a in range(3):
            va, vb, vc = ids[a], ids[(a + 1) % 3], ids[(a + 2) % 3]
            other = next(f for f in _edge_faces()[frozenset((va, vb))] if f != face)
            (vd,) = set(chart_faces(other // 4)[other % 4][0]) - {va, vb}
            placed = {va: corners[va], vb: corners[vb], vd: corners[va] + corners[vb] - corners[vc]}
            key = (other, tuple(sorted((v, tuple(c)) for v, c in placed.items())))
            if key not in seen:
                seen.add(key)
                queue.append((depth + 1, other, placed))
    return found


def _chart0_sources(n: int, widths: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded pixels of chart 0: their flat positions in the padded face, owner codes ``(P, m)`` and weights.

    Each padded lattice point takes the vertex that the unfoldings with the fewest edges
    crossed put there; where several of them put different vertices (beside the vertices
    where 5 triangles meet instead of 6), their mean.
    """
    top, bottom, left, right = widths
    rows, cols = np.arange(-top, n + bottom), np.arange(-left, 2 * n + right)
    i, j = (a.reshape(-1) for a in np.meshgrid(rows, cols, indexing="ij"))
    border = np.flatnonzero((i < 0) | (i >= n) | (j < 0) | (j >= 2 * n))
    point = np.stack([n - 1 - i[border], j[border]], -1)  # lattice (s, t)
    if not border.size:  # no padding: nothing to unfold
        return border, np.zeros((0, 1), np.int64), np.zeros((0, 1))
    hits = [(inside, np.full(inside.size, depth), code) for depth, inside, code in _unfold(n, point)]
    where, depth, code = (np.concatenate(part) for part in zip(*hits, strict=True))
    nearest = np.full(border.size, np.iinfo(np.int64).max)
    np.minimum.at(nearest, where, depth)
    keep = depth == nearest[where]
    pairs = np.unique(np.stack([where[keep], code[keep]]), axis=1)
    count = np.bincount(pairs[0], minlength=border.size)
    if count.min() < 1:
        raise AssertionError("an unfolding left a padded pixel uncovered")
    slot = np.arange(pairs.shape[1]) - np.repeat(np.cumsum(count) - count, count)
    codes = np.zeros((border.size, int(count.max())), np.int64)
    weights = np.zeros(codes.shape)
    codes[pairs[0], slot] = pairs[1]
    weights[pairs[0], slot] = 1.0 / count[pairs[0]]
    return border, codes, weights


@functools.lru_cache(maxsize=32)
def pad_table(level: int, widths: tuple[int, int, int, int]) -> PadTable:
    """The ``ico`` padding table: source ``(5, n, 2n)``, target ``(5, n + top + bottom, 2n + left + right)``.

    Built for chart 0 and turned to the other charts: the turn by 72° about the pole maps
    chart ``k`` onto chart ``k + 1`` and the poles onto themselves.
    """
    n, (top, bottom, left, right) = 2**level, widths
    height, width, face = n + top + bottom, 2 * n + left + right, 2 * n * n
    border, codes, weights = _chart0_sources(n, widths)
    if not border.size:
        return PadTable.from_index(np.arange(_CHARTS * face).reshape(_CHARTS, n, 2 * n), (_CHARTS, n, 2 * n))
    turned = [np.where(codes >= 0, (codes // face + k) % _CHARTS * face + codes % face, codes) for k in range(_CHARTS)]
    taps, tap_weights = _expand(np.concatenate(turned), np.concatenate([weights] * _CHARTS), n)
    i, j = np.meshgrid(np.arange(-top, n + bottom), np.arange(-left, 2 * n + right), indexing="ij")
    inner = np.arange(_CHARTS)[:, None, None] * face + np.clip(i, 0, n - 1) * 2 * n + np.clip(j, 0, 2 * n - 1)
    index = np.repeat(inner[..., None], taps.shape[-1], -1).reshape(_CHARTS, height * width, -1)
    weight = np.zeros(index.shape)
    weight[..., 0] = 1.0
    index[:, border] = taps.reshape(_CHARTS, border.size, -1)
    weight[:, border] = tap_weights.reshape(_CHARTS, border.size, -1)
    shape, source = (_CHARTS, height, width), (_CHARTS, n, 2 * n)
    if taps.shape[-1] == 1:
        return PadTable.from_index(index[..., 0].reshape(shape), source)
    return PadTable(index.reshape(*shape, -1), weight.reshape(*shape, -1), source, shape)


# -- interpolation and areas -------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _face_normals() -> np.ndarray:
    v = base_vertices()
    faces = [chart_faces(f // 4)[f % 4][0] for f in range(4 * _CHARTS)]
    return _normalise(np.array([v[list(ids)].sum(0) for ids in faces]))


def _det(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.einsum("...k,...k->...", a, np.cross(b, c))


def interpolation_table(level: int, points: np.ndarray) -> PadTable:
    r"""Linear interpolation on the mesh triangle holding each of ``points`` ``(..., 3)`` (unit vectors).

    The base face is the one whose plane the ray through the point meets first (the
    largest :math:`p \cdot n_f`: the faces touch one inscribed sphere); the triangle is
    then found level by level, the point lying on the side of a child's midpoint arc
    that holds its corner. The weights are the barycentric coordinates of the point's
    central projection onto the triangle's plane, :math:`\lambda_A \propto \det(p, B, C)`
    and cyclically. A polar corner is the mean of its 5 neighbours. Source
    ``(5, n, 2n)``, target ``points.shape[:-1]``, 7 taps.
    """
    n = 2**level
    lattice = closed_lattice(level)
    shape = points.shape[:-1]
    p = points.reshape(-1, 3)
    face = np.argmax(p @ _face_normals().T, axis=1)
    chart = face // 4
    homes = np.array([[n * np.array(c) for c in chart_faces(f // 4)[f % 4][1]] for f in range(4 * _CHARTS)])
    corners = homes[face]  # (M, 3, 2)

    def vec(at: np.ndarray) -> np.ndarray:
        return lattice[chart, at[:, 0], at[:, 1]]

    for _ in range(level):
        a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
        ab, bc, ca = (a + b) // 2, (b + c) // 2, (c + a) // 2
        mab, mbc, mca = vec(ab), vec(bc), vec(ca)
        in_a = _det(mab, mca, p) * _det(mab, mca, vec(a)) > 0
        in_b = _det(mbc, mab, p) * _det(mbc, mab, vec(b)) > 0
        in_c = _det(mca, mbc, p) * _det(mca, mbc, vec(c)) > 0
        corners = np.select(
            [in_a[:, None, None], in_b[:, None, None], in_c[:, None, None]],
            [np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1)],
            np.stack([ab, bc, ca], 1),
        )
    va, vb, vc = vec(corners[:, 0]), vec(corners[:, 1]), vec(corners[:, 2])
    # Divided by det(A, B, C): the corners of a child come in either orientation.
    raw = np.stack([_det(p, vb, vc), _det(va, p, vc), _det(va, vb, p)], -1) / _det(va, vb, vc)[:, None]
    # Weights below _SNAP are round-off (a point at a vertex): dropped, so that pixel centres return the pixel.
    weight = np.where(raw < _SNAP, 0.0, raw)
    weight /= weight.sum(-1, keepdims=True)
    codes = owner(n, chart[:, None], corners[..., 0], corners[..., 1])
    index, weights = _expand(codes, weight, n)
    if index.shape[-1] < 7:  # a fixed tap count: tables of every point set look alike
        extra = 7 - index.shape[-1]
        index = np.concatenate([index, np.repeat(index[:, :1], extra, 1)], 1)
        weights = np.concatenate([weights, np.zeros((weights.shape[0], extra))], 1)
    return PadTable(index.reshape(*shape, 7), weights.reshape(*shape, 7), (_CHARTS, n, 2 * n), shape)


def _spherical_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    r"""Solid angle of spherical triangles (Van Oosterom & Strackee 1983):
    :math:`\tan(E/2) = |a \cdot (b \times c)| / (1 + a\cdot b + b\cdot c + c\cdot a)`."""
    dots = 1 + np.einsum("...k,...k->...", a, b) + np.einsum("...k,...k->...", b, c)
    dots += np.einsum("...k,...k->...", c, a)
    return 2 * np.arctan2(np.abs(_det(a, b, c)), dots)


@functools.lru_cache(maxsize=8)
def dual_areas(level: int) -> np.ndarray:
    """Each pixel's share of the sphere, ``(5, n, 2n)``: a third of every mesh triangle at it, plus a fifth of a pole's.

    The mesh triangles of chart ``k`` are ``(s, t), (s + 1, t), (s + 1, t + 1)`` and
    ``(s, t), (s, t + 1), (s + 1, t + 1)``; the 5 charts hold each once. A pole's third-shares
    go to its 5 neighbours, whose mean it is. Sums to :math:`4\\pi` (read-only).
    """
    n = 2**level
    lattice = closed_lattice(level)
    k, s, t = np.meshgrid(np.arange(_CHARTS), np.arange(n), np.arange(2 * n), indexing="ij")
    total = np.zeros(_CHARTS * 2 * n * n + 2)
    for second in ((1, 0), (0, 1)):
        corners = [(s, t), (s + second[0], t + second[1]), (s + 1, t + 1)]
        area = _spherical_area(*(lattice[k, cs, ct] for cs, ct in corners)) / 3
        for cs, ct in corners:
            np.add.at(total, owner(n, k, cs, ct), area)  # pole codes -1, -2 land in the last two slots
    areas = total[:-2].copy()
    for pole, slot in ((N_POLE, -1), (S_POLE, -2)):
        areas[pole_neighbours(n, pole)] += total[slot] / 5
    out = areas.reshape(_CHARTS, n, 2 * n)
    out.flags.writeable = False
    return out
