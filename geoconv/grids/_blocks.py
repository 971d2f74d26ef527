r"""The fast path of gather padding: a table compiled into strided block copies.

A padding table (:class:`~geoconv.grids._gather.PadTable`) says, pixel by pixel, where
each padded pixel comes from. Applied literally it is a gather along the last dim, which
costs a random access per pixel and no vectorisation: on a CPU, tens of times a plain copy.

But a padding's table is mostly *structured*. The interior of every face is the input
itself, and each strip beyond a face's border is a block of one neighbouring face, read
with unit steps, perhaps transposed or reversed. So :func:`compile_padding` splits the
padded faces into

- the **interior** of every face: one strided copy;
- **blocks**: rectangles whose source is an affine map of the target with a signed
  permutation matrix,

  .. math::

      (f', r', c') = (f_0, r_0, c_0) + A\,(u, v), \qquad A \in \{\text{signed permutations}\},

  each one slice copy (a view of the source, transposed and flipped); blocks that repeat
  over faces with constant steps are merged into one copy over a face slice;
- **points**: the few rows that are not a plain copy (the corner averages where three
  faces meet) or too small to be worth a copy, applied as one weighted gather.

:class:`PaddingPlan` applies this in one memory pass, for any memory layout (it indexes
views, never flattens), and its adjoint in one more: the interior copied back, every block
added onto its source view, the points scattered with ``index_put_(accumulate=True)``.
:func:`pad_with_plan` and :func:`pad_adjoint_with_plan` wrap both in autograd functions
that are each other's backward, so gradients of any order exist, and contain no
host-device synchronisation.

The literal table gather (:func:`~geoconv.grids._gather.gather`) stays as the reference
path; the tests compare the two on every grid and mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geoconv.errors import ShapeError
from geoconv.grids._gather import PadTable, plain_rows

__all__ = ["Block", "PaddingPlan", "Points", "compile_padding", "pad_adjoint_with_plan", "pad_with_plan"]

Region = tuple[slice, slice, slice]
"""``(faces, rows, cols)`` of a tensor viewed as ``(..., F, H, W)``."""

_MIN_BLOCK = 2
"""Blocks of fewer pixels than this are cheaper as points of the one gather."""


@dataclass(frozen=True)
class Block:
    """One strided copy: ``target = flip(transpose(source))``.

    Attributes
    ----------
    target, source : Region
        Slices of the padded and of the input tensor, viewed as ``(..., F, H, W)``.
    transpose : bool
        The source view is transposed (rows become columns) first.
    flip : tuple of int
        Then these dims (among -2, -1) are reversed.
    """

    target: Region
    source: Region
    transpose: bool
    flip: tuple[int, ...]

    def orient(self, view: torch.Tensor) -> torch.Tensor:
        """The source view in the target's orientation."""
        if self.transpose:
            view = view.transpose(-1, -2)
        return view.flip(self.flip) if self.flip else view

    def unorient(self, view: torch.Tensor) -> torch.Tensor:
        """The target view in the source's orientation (the inverse of :meth:`orient`)."""
        if self.flip:
            view = view.flip(self.flip)
        return view.transpose(-1, -2) if self.transpose else view


@dataclass(frozen=True)
class Points:
    """Target pixels filled by a weighted gather of ``K`` source pixels each.

    Attributes
    ----------
    target : tuple of torch.Tensor
        ``(faces, rows, cols)``, int64 ``(R,)`` each.
    source : tuple of torch.Tensor
        ``(faces, rows, cols)``, int64 ``(R, K)`` each.
    weight : torch.Tensor or None
        float64 ``(R, K)``; ``None`` means ``K == 1`` with weight 1.
    """

    target: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    source: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    weight: torch.Tensor | None


@dataclass(frozen=True)
class PaddingPlan:
    """A padding table compiled into an interior copy, block copies and points.

    Attributes
    ----------
    source_shape, target_shape : tuple of int
        Spatial shapes of the input and of the padded tensor, as in the table
        (``(H, W)`` or ``(F, H, W)``).
    interior : Region
        Where the input lands in the padded tensor.
    blocks : tuple of Block
    points : Points or None
    """

    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    interior: Region
    blocks: tuple[Block, ...]
    points: Points | None

    @property
    def faces(self) -> bool:
        """Whether the layout has a face dim (``(F, H, W)``)."""
        return len(self.source_shape) == 3

    def _as_faces(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.faces else t.unsqueeze(-3)

    def _check(self, x: torch.Tensor, spatial: tuple[int, ...]) -> None:
        if tuple(x.shape[x.dim() - len(spatial) :]) != spatial:
            raise ShapeError(f"x must end with the spatial shape {spatial}, got shape {tuple(x.shape)}")
        if self.points is not None and self.points.weight is not None and not (x.is_floating_point() or x.is_complex()):
            raise ShapeError(
                f"this padding averages a few pixels, which needs a floating-point tensor; got dtype {x.dtype}"
            )

    def apply(self, x: torch.Tensor, faces_outer: bool = False) -> torch.Tensor:
        """Pad ``x`` of shape ``(*lead, *source_shape)`` to ``(*lead, *target_shape)``.

        With ``faces_outer`` (layouts ``(B, C, F, H, W)`` only) the result is stored as
        ``(B, F, C, H', W')`` and returned as its ``(B, C, F, H', W')`` view, so folding the
        faces into the batch is free.
        """
        self._check(x, self.source_shape)
        lead = x.shape[: x.dim() - len(self.source_shape)]
        if faces_outer:
            batch, channels = lead
            out = x.new_empty(batch, self.target_shape[0], channels, *self.target_shape[1:]).transpose(1, 2)
        else:
            out = _empty_like_layout(x, (*lead, *self.target_shape))
        source, target = self._as_faces(x), self._as_faces(out)
        target[(..., *self.interior)].copy_(source)
        for block in self.blocks:
            target[(..., *block.target)].copy_(block.orient(source[(..., *block.source)]))
        points = self.points
        if points is not None:
            taps = source[(..., *points.source)]  # (*lead, R, K)
            values = taps[..., 0] if points.weight is None else (taps * points.weight.to(taps.dtype)).sum(-1)
            target[(..., *points.target)] = values
        return out

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`apply`: ``<apply(x), y> == <x, adjoint(y)>``."""
        self._check(y, self.target_shape)
        lead = y.shape[: y.dim() - len(self.target_shape)]
        out = _empty_like_layout(y, (*lead, *self.source_shape))
        source, target = self._as_faces(out), self._as_faces(y)
        source.copy_(target[(..., *self.interior)])
        for block in self.blocks:
            source[(..., *block.source)].add_(block.unorient(target[(..., *block.target)]))
        points = self.points
        if points is not None:
            values = target[(..., *points.target)].unsqueeze(-1)  # (*lead, R, 1)
            spread = values if points.weight is None else values * points.weight.to(values.dtype)  # (*lead, R, K)
            # index_put_ indexes leading dims, so the spatial dims are moved to the front.
            spatial_first = source.movedim((-3, -2, -1), (0, 1, 2))
            spatial_first.index_put_(points.source, spread.movedim((-2, -1), (0, 1)), accumulate=True)
        return out


def _empty_like_layout(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An empty tensor of ``shape`` in ``x``'s memory format (channels-last stays channels-last)."""
    memory_format = torch.contiguous_format
    if not x.is_contiguous():
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            memory_format = torch.channels_last
        elif x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
            memory_format = torch.channels_last_3d
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=memory_format)


# -- autograd --------------------------------------------------------------------------------


class _Pad(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, plan: PaddingPlan, faces_outer: bool) -> torch.Tensor:
        return plan.apply(x, faces_outer)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.plan = inputs[1]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _PadAdjoint.apply(grad, ctx.plan), None, None


class _PadAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(y: torch.Tensor, plan: PaddingPlan) -> torch.Tensor:
        return plan.adjoint(y)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.plan = inputs[1]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _Pad.apply(grad, ctx.plan, False), None


def pad_with_plan(x: torch.Tensor, plan: PaddingPlan, faces_outer: bool = False) -> torch.Tensor:
    """Pad with a compiled plan; differentiable (its backward is :func:`pad_adjoint_with_plan`).

    ``faces_outer`` stores the result so that ``(B * F, C, H', W')`` is a view of it.
    """
    return _Pad.apply(x, plan, faces_outer)


def pad_adjoint_with_plan(y: torch.Tensor, plan: PaddingPlan) -> torch.Tensor:
    """The adjoint of :func:`pad_with_plan`; differentiable (its backward is the padding)."""
    return _PadAdjoint.apply(y, plan)


# -- compiling a table ---------------------------------------------------------------------

_UNIT_STEPS = {(1, 0), (-1, 0), (0, 1), (0, -1)}


def _fit_block(faces: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[Region, bool, tuple[int, ...]] | None:
    """Fit a signed-permutation affine map to a region's source coordinates, each ``(h, w)``.

    Returns the source region (ascending slices of one face), whether it is transposed and
    which dims are flipped; ``None`` when the region is not one strided block.
    """
    if not (faces == faces[0, 0]).all():
        return None
    h, w = rows.shape
    step_u = (int(rows[1, 0] - rows[0, 0]), int(cols[1, 0] - cols[0, 0])) if h > 1 else None
    step_v = (int(rows[0, 1] - rows[0, 0]), int(cols[0, 1] - cols[0, 0])) if w > 1 else None
    if (step_u is not None and step_u not in _UNIT_STEPS) or (step_v is not None and step_v not in _UNIT_STEPS):
        return None
    # A strip one pixel wide leaves one step free: complete it to a permutation.
    if step_u is None:
        step_u = (1, 0) if step_v is None or step_v[0] == 0 else (0, 1)
    if step_v is None:
        step_v = (0, 1) if step_u[1] == 0 else (1, 0)
    if step_u[0] * step_v[0] or step_u[1] * step_v[1]:
        return None
    u, v = np.arange(h)[:, None], np.arange(w)[None, :]
    if not (
        np.array_equal(rows, rows[0, 0] + step_u[0] * u + step_v[0] * v)
        and np.array_equal(cols, cols[0, 0] + step_u[1] * u + step_v[1] * v)
    ):
        return None
    transpose = step_u[0] == 0
    sign_u, sign_v = (step_u[1], step_v[0]) if transpose else (step_u[0], step_v[1])
    flip = tuple(dim for dim, sign in ((-2, sign_u), (-1, sign_v)) if sign < 0)
    face = int(faces[0, 0])
    region = (
        slice(face, face + 1),
        slice(int(rows.min()), int(rows.max()) + 1),
        slice(int(cols.min()), int(cols.max()) + 1),
    )
    return region, transpose, flip


def _cover(
    face: int,
    rows: tuple[int, int],
    cols: tuple[int, int],
    source: tuple[np.ndarray, np.ndarray, np.ndarray],
    plain: np.ndarray,
    blocks: list[Block],
    points: list[tuple[int, int, int]],
) -> None:
    """Cover a target rectangle with blocks, halving it where it is not one; the rest are points."""
    (r0, r1), (c0, c1) = rows, cols
    area = (r1 - r0) * (c1 - c0)
    if area == 0:
        return
    window = (face, slice(r0, r1), slice(c0, c1))
    if area >= _MIN_BLOCK and plain[window].all():
        fitted = _fit_block(*(s[window] for s in source))
        if fitted is not None:
            region, transpose, flip = fitted
            blocks.append(Block((slice(face, face + 1), slice(r0, r1), slice(c0, c1)), region, transpose, flip))
            return
    if area < _MIN_BLOCK * 2:
        points.extend((face, r, c) for r in range(r0, r1) for c in range(c0, c1))
        return
    if r1 - r0 >= c1 - c0:
        middle = (r0 + r1) // 2
        _cover(face, (r0, middle), cols, source, plain, blocks, points)
        _cover(face, (middle, r1), cols, source, plain, blocks, points)
    else:
        middle = (c0 + c1) // 2
        _cover(face, rows, (c0, middle), source, plain, blocks, points)
        _cover(face, rows, (middle, c1), source, plain, blocks, points)


def _merge_over_faces(blocks: list[Block]) -> list[Block]:
    """Merge blocks that repeat with constant target and source face steps into one copy."""
    groups: dict[tuple, list[Block]] = {}
    for block in blocks:
        # Slices are not hashable before Python 3.12: key on their bounds.
        bounds = tuple((s.start, s.stop) for s in (*block.target[1:], *block.source[1:]))
        key = (*bounds, block.transpose, block.flip)
        groups.setdefault(key, []).append(block)
    merged: list[Block] = []
    for members in groups.values():
        target_rest, source_rest = members[0].target[1:], members[0].source[1:]
        transpose, flip = members[0].transpose, members[0].flip
        members.sort(key=lambda b: b.target[0].start)
        run = [members[0]]
        for block in [*members[1:], None]:
            if block is not None and _extends(run, block):
                run.append(block)
                continue
            first, last = run[0], run[-1]
            t_step = 1 if len(run) == 1 else run[1].target[0].start - first.target[0].start
            s_step = 1 if len(run) == 1 else run[1].source[0].start - first.source[0].start
            faces_t = slice(first.target[0].start, last.target[0].start + 1, t_step)
            faces_s = slice(first.source[0].start, last.source[0].start + 1, s_step)
            merged.append(Block((faces_t, *target_rest), (faces_s, *source_rest), transpose, flip))
            if block is not None:
                run = [block]
    return merged


def _extends(run: list[Block], block: Block) -> bool:
    t_next, s_next = block.target[0].start, block.source[0].start
    t_last, s_last = run[-1].target[0].start, run[-1].source[0].start
    if len(run) == 1:
        return t_next > t_last and s_next > s_last
    t_step = run[1].target[0].start - run[0].target[0].start
    s_step = run[1].source[0].start - run[0].source[0].start
    return t_next - t_last == t_step and s_next - s_last == s_step


def compile_padding(table: PadTable, widths: tuple[int, int, int, int], device: torch.device) -> PaddingPlan:
    """Compile a padding table into a :class:`PaddingPlan` on ``device``.

    Parameters
    ----------
    table : PadTable
        A padding: the interior of each target face must be the source face itself.
    widths : (int, int, int, int)
        ``(top, bottom, left, right)`` of the padding the table implements.
    device : torch.device
        Where the points' index tensors live.

    Examples
    --------
    >>> index = np.array([[2, 0, 1, 2, 0]])  # circular padding of a row of 3 by 1 on each side
    >>> plan = compile_padding(PadTable.from_index(index, (1, 3)), (0, 0, 1, 1), torch.device("cpu"))
    >>> plan.apply(torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([[3., 1., 2., 3., 1.]])
    """
    source_shape, target_shape = table.source_shape, table.target_shape
    faces3 = (1, *source_shape) if len(source_shape) == 2 else source_shape
    n_faces, height, width = faces3
    top, bottom, left, right = widths
    padded3 = (n_faces, height + top + bottom, width + left + right)
    if int(np.prod(padded3)) != int(np.prod(target_shape)):
        raise AssertionError(f"widths {widths} do not turn {source_shape} into {target_shape}")
    taps = table.index.reshape(*padded3, -1)
    first = taps[..., 0]
    if table.weight is None:
        plain = np.ones(padded3, dtype=bool)
        weight = None
    else:
        weight = table.weight.reshape(*padded3, -1)
        plain = plain_rows(taps, weight)
    face_of, rest = np.divmod(first, height * width)
    source = (face_of, *np.divmod(rest, width))
    interior = (slice(None), slice(top, top + height), slice(left, left + width))
    expected = np.arange(n_faces * height * width).reshape(faces3)
    if not (np.array_equal(first[interior], expected) and plain[interior].all()):
        raise AssertionError("not a padding table: the interior is not the input")
    blocks: list[Block] = []
    points: list[tuple[int, int, int]] = []
    bands_r = ((0, top), (top, top + height), (top + height, padded3[1]))
    bands_c = ((0, left), (left, left + width), (left + width, padded3[2]))
    for face in range(n_faces):
        for i, band_r in enumerate(bands_r):
            for j, band_c in enumerate(bands_c):
                if (i, j) != (1, 1):
                    _cover(face, band_r, band_c, source, plain, blocks, points)
    return PaddingPlan(
        tuple(source_shape),
        tuple(target_shape),
        interior,
        tuple(_merge_over_faces(blocks)),
        _points(points, taps, weight, (height, width), device),
    )


def _points(
    where: list[tuple[int, int, int]],
    taps: np.ndarray,
    weight: np.ndarray | None,
    face_shape: tuple[int, int],
    device: torch.device,
) -> Points | None:
    if not where:
        return None
    f, r, c = (np.array(axis, dtype=np.int64) for axis in zip(*where, strict=True))
    index = taps[f, r, c]  # (R, K)
    w = None if weight is None else weight[f, r, c]
    if w is not None and plain_rows(index, w).all():
        index, w = index[:, :1], None
    face_of, rest = np.divmod(index, face_shape[0] * face_shape[1])

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return Points(
        target=(tensor(f), tensor(r), tensor(c)),
        source=(tensor(face_of), *(tensor(a) for a in np.divmod(rest, face_shape[1]))),
        weight=None if w is None else tensor(w),
    )
