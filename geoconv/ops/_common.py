"""Pieces every grid op shares: padding specs, input checks, weight initialisation, the grid base class."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from geoconv._checks import check_int, check_pair
from geoconv.errors import DTypeError, ParameterError, ShapeError
from geoconv.grids import Grid, PadWidths, check_pad_widths, get_grid
from geoconv.sizes import Layer, same_padding

__all__ = [
    "ConvAxis",
    "PaddingSpec",
    "IntOrPair",
    "GridOp",
    "InputSizeRequired",
    "SameChannelsOp",
    "autocast_enabled",
    "check_axis",
    "check_input_size",
    "check_op_input",
    "check_output_faces",
    "same_layer",
    "check_padding",
    "resolve_padding",
    "init_conv_parameters",
]

IntOrPair = int | tuple[int, int]
"""An int for both spatial dims, or ``(height, width)``."""

PlanarResult = TypeVar("PlanarResult", torch.Tensor, tuple[torch.Tensor, ...])

PaddingSpec = int | tuple[int, int] | tuple[int, int, int, int] | Literal["same", "valid"]
"""``p``, ``(ph, pw)``, ``(top, bottom, left, right)``, ``"same"`` (TensorFlow) or ``"valid"`` (none)."""


def check_padding(value: object, name: str = "padding") -> str | PadWidths:
    """Validate a :data:`PaddingSpec`; return ``"same"``, ``"valid"`` or 4 widths.

    >>> check_padding(1)
    (1, 1, 1, 1)
    >>> check_padding("SAME")
    'same'
    """
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("same", "valid"):
            return lowered
        raise ParameterError(
            f"{name} must be 'same', 'valid', an int, a pair or a 4-tuple (top, bottom, left, right), got {value!r}"
        )
    return check_pad_widths(value, name)


def resolve_padding(
    padding: str | PadWidths,
    spatial: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> PadWidths:
    """Turn a checked padding spec into ``(top, bottom, left, right)`` for one input size.

    ``"same"`` is TensorFlow's definition (see :func:`geoconv.sizes.same_padding`); it
    depends on the input size when the stride is larger than one.
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        top, bottom = same_padding(spatial[0], kernel_size[0], stride[0], dilation[0])
        left, right = same_padding(spatial[1], kernel_size[1], stride[1], dilation[1])
        return (top, bottom, left, right)
    return padding  # type: ignore[return-value]


@dataclass(frozen=True)
class ConvAxis:
    r"""One axis of a conv of ``size`` pixels padded by ``(before, after)``; how torch's symmetric padding serves it.

    The conv reads :math:`\text{extent} = s(\text{out} - 1) + d(k - 1) + 1` padded pixels.
    torch's ``conv2d`` with padding ``pad = before + stride * skip`` on both sides returns
    ``torch_out`` pixels, ours from ``skip`` on; torch's ``conv_transpose2d`` with padding
    ``tpad`` and output_padding ``extra`` of its input with ``lead`` zero pixels prepended
    returns ``tout`` pixels, our ``size`` from ``crop`` on (``extra`` is raised by one where
    that makes ``tout`` even: mkldnn's transposed conv is about twice as slow for an odd size).
    ``exact``: both are ours, nothing cropped, nothing prepended; ``texact``: the transposed
    conv's output is ours (after the ``lead``).

    Where the transposed conv would run with padding 0 and a stride (TensorFlow's "same" at
    stride 2), one zero input pixel is prepended and torch pads by the stride instead: it
    shifts torch's output by one stride, so the window is the same, and mkldnn's transposed
    conv with padding 0 is 3-4 times slower (torch 2.13 on the CPU, B 4, 32 channels, 32 -> 64).

    >>> a = ConvAxis(8, 0, 1, 3, 2, 1)  # TensorFlow's "same", stride 2: padding (0, 1)
    >>> (a.out, a.skip, a.pad, a.torch_out), (a.lead, a.tpad, a.extra, a.tout, a.crop), a.exact, a.texact
    ((4, 1, 2, 5), (1, 2, 1, 8, 0), False, True)
    """

    size: int
    before: int
    after: int
    kernel: int
    stride: int
    dilation: int
    out: int = field(init=False)
    extent: int = field(init=False)
    skip: int = field(init=False)
    pad: int = field(init=False)
    torch_out: int = field(init=False)
    lead: int = field(init=False)
    tpad: int = field(init=False)
    extra: int = field(init=False)
    tout: int = field(init=False)
    crop: int = field(init=False)
    exact: bool = field(init=False)
    texact: bool = field(init=False)

    def __post_init__(self) -> None:
        n, t, s, d = self.size, self.before, self.stride, self.dilation
        reach = d * (self.kernel - 1)
        out = (n + t + self.after - reach - 1) // s + 1
        extent = s * (out - 1) + reach + 1
        skip = max(0, out - ((n + 2 * t - reach - 1) // s + 1))
        torch_out = (n + 2 * (t + s * skip) - reach - 1) // s + 1
        most, need = max(s, d) - 1, n + 2 * t - extent
        if need > most:
            tpad, extra = min(t, extent + most - t - n), most
        else:
            tpad, extra = t, max(0, need)
            extra += (extent - 2 * t + extra) % 2 and extra < most
        tout, crop, lead = extent - 2 * tpad + extra, t - tpad, 0
        if tpad == 0 and s > 1 and 0 <= crop + n - (extent - s) <= most:  # one zero pixel first, padding s
            lead, tpad, extra, tout = 1, s, crop + n - (extent - s), crop + n
        values = {"out": out, "extent": extent, "skip": skip, "pad": t + s * skip, "torch_out": torch_out}
        values.update(lead=lead, tpad=tpad, extra=extra, tout=tout, crop=crop)
        values["exact"] = skip == 0 and torch_out == out and tpad == t and tout == n and not lead
        values["texact"] = crop == 0 and tout == n
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def bands(self) -> list[tuple[int, ...]]:
        """``(side, out0, out1, tap0, tap1, strip0, strip1, halo0, halo1)`` of the border bands (side -1, then 1).

        Output pixels ``[out0, out1)`` read the halo beyond the low (``side`` -1) or high
        border with kernel taps ``[tap0, tap1)`` only, over padded pixels
        ``[strip0, strip1)``, of which ``[halo0, halo1)`` are halo.

        >>> ConvAxis(8, 1, 1, 3, 1, 1).bands()  # a 3x3 kernel: one output row, one kernel row, one padded row
        [(-1, 0, 1, 0, 1, 0, 1, 0, 1), (1, 7, 8, 2, 3, 9, 10, 9, 10)]
        """
        s, d, k, t, out = self.stride, self.dilation, self.kernel, self.before, self.out
        found = []
        top, taps = min(out, -(-t // s)), min(k, -(-t // d))
        if top > 0 and taps > 0:
            length = s * (top - 1) + d * (taps - 1) + 1
            found.append((-1, 0, top, 0, taps, 0, length, 0, min(t, length)))
        edge = t + self.size
        first = max(0, -(-(edge - d * (k - 1)) // s))
        tap = max(0, -(-(edge - s * (out - 1)) // d))
        if first < out and tap < k and self.extent > edge:
            start = s * first + d * tap
            found.append((1, first, out, tap, k, start, self.extent, max(start, edge), self.extent))
        return found


def check_output_faces(op: str, grid: Grid, x: torch.Tensor, out: Sequence[int], /, **params: object) -> None:
    """Raise a ``ShapeError`` if an output face of size ``out`` (H', W') is not valid on ``grid``.

    A conv or pool with a stride maps a valid face to one of any size: HEALPix nside 8
    pooled by 3 gives 3x3 faces, an equirect width 6 halved is odd. Such a tensor is not
    a signal on the grid and every later op would refuse it, so the op refuses first and
    names the parameters that decide the size.
    """
    problem = grid.face_problem(int(out[0]), int(out[1]))
    if problem is None:
        return
    settings = ", ".join(f"{name}={value!r}" for name, value in params.items())
    raise ShapeError(
        f"{op} on grid {grid.name!r}: x of shape {tuple(x.shape)} (faces {x.shape[-2]}x{x.shape[-1]}) would give "
        f"output faces {int(out[0])}x{int(out[1])}, but an output of shape {grid.layout} needs {problem}; "
        f"choose an input size or {settings} that keep it"
    )


def init_conv_parameters(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Initialise like ``torch.nn.Conv2d``: Kaiming-uniform with ``a = sqrt(5)``."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``: torch then casts inputs and weights itself."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        return bool(torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled())


def check_op_input(
    op: str,
    grid: Grid,
    x: object,
    channels: int,
    *,
    name: str = "x",
    floating: bool = False,
    allow_complex: bool = False,
    like: torch.Tensor | None = None,
    match_dtype: bool = True,
    autocast: bool = True,
    what: str = "parameters",
) -> torch.Tensor:
    """Check an op's input: the grid's layout, the channel count, the dtype, the device.

    The one copy of the checks every op makes before it computes (torch would otherwise
    fail deep inside a kernel with a bare ``RuntimeError``).

    Parameters
    ----------
    op : str
        The op's registry name, the prefix of every message.
    grid : Grid
        The grid ``x`` must live on; its :attr:`~geoconv.grids.Grid.layout` is named in
        the channel message (``(B, C, 12, n, n)`` on HEALPix).
    x : torch.Tensor
        The input.
    channels : int
        The channel count dim 1 must have.
    name : str
        How messages call ``x``.
    floating : bool
        Require a floating-point dtype.
    allow_complex : bool
        With ``floating``, accept a complex dtype too (an op whose weights may be complex).
    like : torch.Tensor, optional
        The op's weight (or fixed filter): ``x`` must be on its device and, with
        ``match_dtype``, have its dtype.
    match_dtype : bool
        Require ``like``'s dtype (``False`` for a fixed filter that follows the input, or
        a kernel that casts itself).
    autocast : bool
        Accept another dtype than ``like``'s under autocast, where torch casts itself (for
        ops whose kernels all autocast).
    what : str
        What ``like`` is, for messages (``"parameters"``, ``"filter"``).

    Returns
    -------
    torch.Tensor
        ``x``, checked.

    Raises
    ------
    ShapeError
        For a wrong layout, channel count, a dtype that is not floating-point, or a device
        other than ``like``'s.
    DTypeError
        For a floating-point dtype other than ``like``'s.

    Examples
    --------
    >>> import torch
    >>> from geoconv.grids import get_grid
    >>> try:
    ...     check_op_input("conv", get_grid("healpix"), torch.zeros(1, 2, 12, 2, 2), 3)
    ... except ShapeError as error:
    ...     print(error)
    conv: x must have in_channels=3 channels in dim 1 of (B, C, 12, n, n), got shape (1, 2, 12, 2, 2)
    """
    x = grid.check(x, name)
    if x.shape[1] != channels:
        raise ShapeError(
            f"{op}: {name} must have in_channels={channels} channels in dim 1 of {grid.layout}, "
            f"got shape {tuple(x.shape)}"
        )
    if floating and not (x.is_floating_point() or (allow_complex and x.is_complex())):
        hint = f"; convert it with {name}.to({like.dtype})" if like is not None else ""
        raise ShapeError(f"{op}: {name} must have a floating-point dtype, got {x.dtype}{hint}")
    if like is None:
        return x
    verb = "are" if what.endswith("s") else "is"
    if match_dtype and x.dtype != like.dtype and not (autocast and autocast_enabled(x.device.type)):
        raise DTypeError(
            f"{op}: {name} has dtype {x.dtype} but the op's {what} {verb} {like.dtype}; convert one to the other, "
            f"e.g. op.to({x.dtype}) or {name}.to({like.dtype})"
        )
    if x.device != like.device:
        raise ShapeError(
            f"{op}: {name} is on device {x.device} but the op's {what} {verb} on {like.device}; move one, "
            f"e.g. op.to({str(x.device)!r})"
        )
    return x


class InputSizeRequired(ParameterError):
    """An op's :meth:`GridOp.layers` needs ``input_size``: "same" padding with a stride above 1.

    That padding splits ``d (k - 1) + (s - n mod s)``-ish pixels between the sides, which
    depends on the input size ``n``; :func:`geoconv.probes.locality.layers_of` answers it by
    asking for ``input_shape``.
    """


def check_axis(axis: object) -> int:
    """Return ``axis`` if it is ``-2`` (rows) or ``-1`` (columns), else raise ``ParameterError``."""
    if isinstance(axis, bool) or axis not in (-2, -1):
        raise ParameterError(f"axis must be -2 (rows) or -1 (columns), got {axis!r}")
    return int(axis)  # type: ignore[call-overload]


def check_input_size(input_size: object) -> tuple[int, int] | None:
    """``None`` or the spatial size ``(H, W)`` of one face, checked."""
    if input_size is None:
        return None
    return check_pair("input_size", input_size, minimum=1)


def same_layer(
    op: str,
    input_size: tuple[int, int] | None,
    axis: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> Layer:
    """The :class:`~geoconv.sizes.Layer` along ``axis`` of a layer with TensorFlow "same" padding.

    At stride 1 the left padding is ``d (k - 1) // 2`` whatever the size; above it, it
    depends on the input size, which must then be given.
    """
    a = axis + 2
    if stride[a] > 1 and input_size is None:
        raise InputSizeRequired(
            f"{op} has 'same' padding with stride={stride}, whose split between the sides depends on the "
            "input size; pass input_size=(H, W)"
        )
    size = input_size[a] if input_size is not None else 1
    left = same_padding(size, kernel_size[a], stride[a], dilation[a])[0]
    return Layer(kernel_size=kernel_size[a], stride=stride[a], padding=left, dilation=dilation[a])


class GridOp(nn.Module):
    """Base class of ops written once for every grid: a planar op after the grid's padding.

    Holds the grid and the resolved padding mode. A subclass checks its input with
    :meth:`check_input` and runs its planar kernel through :meth:`run_planar`, which pads
    every face straight into planes, runs the kernel on them and unfolds the result: the
    one implementation of "a spherical op is a planar op after the grid's padding".

    Every op describes its own geometry for the receptive-field arithmetic of
    :mod:`geoconv.probes.locality`:

    - ``layers(input_size=None, axis=-1) -> list[geoconv.sizes.Layer]``: the kernel,
      stride, dilation and left/top padding of each planar layer it applies along
      ``axis`` (``-2`` rows, ``-1`` columns), from input to output; ``input_size``
      ``(H, W)`` is needed only where the padding depends on it ("same" with a stride
      above 1). Ops that upsample, resample or are not local raise a ``GeoconvError``.
    - ``output_size(input_size) -> (H', W')``: the face size it returns for faces of
      ``input_size``.

    Parameters
    ----------
    grid : str
        A registered grid.
    padding_mode : str, optional
        A mode of the grid; ``None`` means ``planar_default`` on the plane (when given)
        and the grid's own padding elsewhere.
    planar_default : str, optional
        What ``None`` stands for on a bounded grid (the plane: ``Grid.bounded``), whose
        padding is a convention an op may choose.
    value : float
        The fill of ``padding_mode="constant"``.
    op_name : str
        The registry name, the prefix of messages.
    """

    def __init__(
        self,
        grid: str,
        padding_mode: str | None = None,
        planar_default: str | None = None,
        value: float = 0.0,
        *,
        op_name: str = "op",
    ) -> None:
        super().__init__()
        self.op_name = op_name
        self.grid: Grid = get_grid(grid)
        if padding_mode is None and planar_default is not None and self.grid.bounded:
            padding_mode = planar_default
        self.padding_mode = self.grid.check_mode(padding_mode)
        if value != 0 and self.padding_mode != "constant":
            # A fill value that no padding would use is a mistake, not something to ignore.
            raise ParameterError(
                f"value={value} is the fill of padding_mode='constant', but padding_mode is {self.padding_mode!r}"
            )

    @property
    def torch_pads_itself(self) -> bool:
        """Whether the grid is a bounded domain (the plane), whose padding torch's kernels may do themselves.

        There the padding is a convention, zeros (or -inf for a max) inside the kernel
        for free; on a torus or the sphere every padded pixel is a real neighbour.
        """
        return self.grid.bounded

    def check_input(self, x: object, channels: int, **checks: Any) -> torch.Tensor:
        """:func:`check_op_input` for this op and grid; ``checks`` are its keyword arguments."""
        return check_op_input(self.op_name, self.grid, x, channels, **checks)

    def run_planar(
        self,
        x: torch.Tensor,
        kernel: Callable[[torch.Tensor, tuple[int, int]], PlanarResult],
        widths: PadWidths,
        out: Sequence[int],
        *,
        implicit: bool = False,
        value: float = 0.0,
        mode: str | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> PlanarResult:
        """Run a planar kernel on every face of ``x`` after the grid's padding.

        1. Refuse an output face of size ``out`` the grid would reject
           (:func:`check_output_faces`, naming ``settings``), before any work.
        2. Pad every face by ``widths`` straight into planes ``(B * faces, C, H + t + b, W + l + r)``
           (:meth:`Grid.pad_to_planes`: no transposing copy), or fold the faces
           unpadded when ``implicit`` (the kernel pads ``(t, l)`` itself, symmetrically:
           torch's free zero or -inf padding on the plane) or when every width is 0.
        3. ``kernel(planes, padding)`` with ``padding`` the ``(rows, cols)`` it must pad
           itself (``(0, 0)`` unless ``implicit``); it returns a tensor or a tuple of them.
        4. Cut each result to ``out`` on the bottom/right (a kernel may return more, as
           torch's ``ceil_mode`` does on explicitly padded planes) and unfold it to the
           grid's layout.

        Parameters
        ----------
        x : torch.Tensor
            Checked input in the grid's layout.
        kernel : callable
            ``kernel(planes, padding) -> tensor or tuple of tensors`` of shape
            ``(B * faces, C', H'', W'')`` with ``H'' >= out[0]``, ``W'' >= out[1]``.
        widths : (top, bottom, left, right)
            The padding.
        out : (H', W')
            The output face size.
        implicit : bool
            Leave the padding to the kernel (``widths`` must be symmetric).
        value : float
            Fill of ``padding_mode="constant"``.
        mode : str, optional
            The padding mode; this op's :attr:`padding_mode` by default.
        settings : mapping, optional
            The parameters that decide ``out``, named when the grid rejects it.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            In the grid's layout, ``(B, C', *faces, H', W')``.

        Examples
        --------
        >>> import torch
        >>> import torch.nn.functional as F
        >>> op = GridOp("cubemap", op_name="box")
        >>> x = torch.ones(1, 1, 6, 4, 4)
        >>> y = op.run_planar(x, lambda planes, _: F.avg_pool2d(planes, 3, 1), (1, 1, 1, 1), (4, 4))
        >>> y.shape, bool((y - 1).abs().max() < 1e-6)   # the cube padding continues a constant
        (torch.Size([1, 1, 6, 4, 4]), True)
        """
        out_h, out_w = int(out[0]), int(out[1])
        check_output_faces(self.op_name, self.grid, x, (out_h, out_w), **dict(settings or {}))
        top, bottom, left, right = widths
        if implicit:
            if (top, left) != (bottom, right):
                raise ParameterError(f"{self.op_name}: implicit padding must be symmetric, got widths {widths}")
            planes, padding = self.grid.to_planes(x), (top, left)
        elif widths == (0, 0, 0, 0):
            planes, padding = self.grid.to_planes(x), (0, 0)
        else:
            mode = self.padding_mode if mode is None else mode
            planes, padding = self.grid.pad_to_planes(x, widths, mode, value), (0, 0)
        result = kernel(planes, padding)
        batch = x.shape[0]

        def unfold(y: torch.Tensor) -> torch.Tensor:
            if y.shape[-2] != out_h or y.shape[-1] != out_w:
                y = y[..., :out_h, :out_w]
            return self.grid.from_planes(y, batch=batch)

        if isinstance(result, tuple):
            return tuple(unfold(y) for y in result)  # type: ignore[return-value]
        return unfold(result)

    def extra_repr(self) -> str:
        return f"grid={self.grid.name!r}, padding_mode={self.padding_mode!r}"


class SameChannelsOp(GridOp):
    """Base class of the pooling-type ops: the channel count goes through unchanged.

    Parameters
    ----------
    op_name : str
        The registry name, for messages.
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Must equal ``in_channels`` if given.
    grid : str or Grid
        The grid the input lives on.
    padding_mode : str, optional
        See :class:`GridOp`.
    planar_default : str, optional
        The mode ``None`` stands for on the plane.
    value : float
        Fill of ``padding_mode="constant"``.
    """

    def __init__(
        self,
        op_name: str,
        in_channels: int,
        out_channels: int | None,
        grid: str | Grid,
        padding_mode: str | None = None,
        planar_default: str | None = None,
        value: float = 0.0,
    ) -> None:
        super().__init__(grid, padding_mode, planar_default, value, op_name=op_name)  # type: ignore[arg-type]
        in_channels = check_int("in_channels", in_channels, minimum=1)
        out_channels = in_channels if out_channels is None else check_int("out_channels", out_channels, minimum=1)
        if out_channels != in_channels:
            raise ParameterError(
                f"op {op_name!r} keeps the channel count: out_channels must equal in_channels "
                f"({in_channels}) or be left out, got out_channels={out_channels}"
            )
        self.in_channels = self.out_channels = in_channels

    def check_input(self, x: object, channels: int | None = None, **checks: Any) -> torch.Tensor:  # type: ignore[override]
        """Check layout, channel count (``in_channels`` by default) and the checks of :func:`check_op_input`."""
        return super().check_input(x, self.in_channels if channels is None else channels, **checks)


def pairs(*values: IntOrPair | Sequence[int], names: Sequence[str], minimum: int = 1) -> list[tuple[int, int]]:
    """Check several int-or-pair values at once; see :func:`geoconv._checks.check_pair`."""
    return [check_pair(name, value, minimum=minimum) for name, value in zip(names, values, strict=True)]
