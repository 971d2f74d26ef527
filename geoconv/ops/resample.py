r"""Resampling by a factor or to a size: ``upsample`` and ``downsample``.

One implementation, :class:`Resample`, registered twice: ``upsample`` (default factor 2,
never shrinks) and ``downsample`` (default factor 1/2, never grows, with ``area`` and
antialiasing as extra choices). Both keep the channel count.

Interpolation follows ``torch.nn.functional.interpolate``. With
``align_corners=False`` output pixel :math:`i` samples the input at

.. math::

    u = \frac{i + 1/2}{f} - \frac{1}{2},

with :math:`f` the scale factor (or output size / input size when ``size`` is given),
so a downsample by 1/2 with ``bilinear`` is the mean of each 2x2 block.

On the plane, at the borders the edge pixel is repeated (torch's rule). On a spherical
grid the faces are continued across their borders instead: each face is padded with the
grid's own padding by the few pixels the interpolation kernel reaches beyond the face,
resampled, and cropped back, so that interpolation near an edge reads the neighbouring
face. This needs an integer ratio between input and output sizes (what keeps a
spherical grid a grid of the same kind: nside doubles or halves on HEALPix).
``align_corners=True`` has no meaning there (face corners are not sample points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from geoconv._checks import check_bool, check_choice, check_float, check_pair
from geoconv.errors import ParameterError, ShapeError
from geoconv.ops._common import IntOrPair, SameChannelsOp, check_output_faces
from geoconv.ops.registry import EVERY_GRID, register_op
from geoconv.sizes import Layer

__all__ = [
    "DOWNSAMPLE_MODES",
    "UPSAMPLE_MODES",
    "Downsample",
    "DownsampleConfig",
    "Resample",
    "Upsample",
    "UpsampleConfig",
]

UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "nearest", "bicubic")
DOWNSAMPLE_MODES: tuple[str, ...] = ("bilinear", "nearest", "bicubic", "area")
_INTERPOLATING = ("bilinear", "bicubic")

FloatOrPair = float | tuple[float, float]


def _check_factor(name: str, value: object) -> tuple[float, float]:
    if isinstance(value, tuple | list) and len(value) == 2:
        return _finite_factor(f"{name}[0]", value[0]), _finite_factor(f"{name}[1]", value[1])
    if isinstance(value, tuple | list):
        raise ParameterError(f"{name} must be a number or a pair (height, width) of numbers, got {value!r}")
    factor = _finite_factor(name, value)
    return factor, factor


def _finite_factor(name: str, value: object) -> float:
    factor = check_float(name, value, positive=True)
    if not math.isfinite(factor):
        raise ParameterError(f"{name} must be a finite number > 0, got {factor}")
    return factor


def _interpolate(planes: torch.Tensor, kwargs: dict[str, object]) -> torch.Tensor:
    """``F.interpolate``; torch's antialiased CPU kernels take no half precision, so those run in float32."""
    if kwargs.get("antialias") and planes.device.type == "cpu" and planes.dtype in (torch.float16, torch.bfloat16):
        return F.interpolate(planes.float(), **kwargs).to(planes.dtype)  # type: ignore[arg-type]
    return F.interpolate(planes, **kwargs)  # type: ignore[arg-type]


@dataclass
class UpsampleConfig:
    """Parameters of ``upsample``.

    Attributes
    ----------
    scale_factor : float or (float, float)
        Output size ``floor(input * scale_factor)``; at least 1 along each axis.
    size : int or (int, int), optional
        The output size ``(H', W')``; overrides ``scale_factor``. At least the input size.
    mode : str
        ``bilinear``, ``nearest`` or ``bicubic``.
    align_corners : bool
        For ``bilinear``/``bicubic``: map corner pixel centres onto each other instead of
        the pixel edges (torch's meaning).
    """

    direction: ClassVar[str] = "upsample"
    modes: ClassVar[tuple[str, ...]] = UPSAMPLE_MODES

    scale_factor: FloatOrPair = 2.0
    size: IntOrPair | None = None
    mode: str = "bilinear"
    align_corners: bool = False

    def __post_init__(self) -> None:
        self.scale_factor = _check_factor("scale_factor", self.scale_factor)
        if self.size is not None:
            self.size = check_pair("size", self.size, minimum=1)
        self.mode = check_choice("mode", self.mode, self.modes)
        self.align_corners = check_bool("align_corners", self.align_corners)
        grows = self.direction == "upsample"
        if any((f < 1.0) if grows else (f > 1.0) for f in self.scale_factor):
            raise ParameterError(
                f"{self.direction} never {'shrinks' if grows else 'grows'}: scale_factor must be "
                f"{'>= 1' if grows else '<= 1'} along each axis, got {self.scale_factor}; use "
                f"{'downsample' if grows else 'upsample'}"
            )
        if self.align_corners and self.mode not in _INTERPOLATING:
            raise ParameterError(f"align_corners=True applies to mode 'bilinear' or 'bicubic', got mode={self.mode!r}")


@dataclass
class DownsampleConfig(UpsampleConfig):
    """Parameters of ``downsample``.

    Attributes
    ----------
    scale_factor : float or (float, float)
        Output size ``floor(input * scale_factor)``; at most 1 along each axis.
    size : int or (int, int), optional
        The output size ``(H', W')``; overrides ``scale_factor``. At most the input size.
    mode : str
        ``bilinear``, ``nearest``, ``bicubic`` or ``area`` (the mean over each output
        pixel's footprint, adaptive average pooling).
    align_corners : bool
        For ``bilinear``/``bicubic``, as in ``upsample``.
    antialias : bool
        For ``bilinear``/``bicubic``: widen the interpolation kernel by the inverse
        factor, so that every input pixel contributes (torch's ``antialias``).
    """

    direction: ClassVar[str] = "downsample"
    modes: ClassVar[tuple[str, ...]] = DOWNSAMPLE_MODES

    scale_factor: FloatOrPair = 0.5
    antialias: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.antialias = check_bool("antialias", self.antialias)
        if self.antialias and self.mode not in _INTERPOLATING:
            raise ParameterError(f"antialias=True applies to mode 'bilinear' or 'bicubic', got mode={self.mode!r}")


class Resample(SameChannelsOp):
    """Resampling by a factor or to a size: the one implementation behind ``upsample``/``downsample``.

    Keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left out.

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Equal to ``in_channels`` if given.
    grid : str
        The grid the input lives on.
    config : UpsampleConfig or DownsampleConfig
        The factor or size, the mode; the config's type decides the direction.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H', W')`` with ``H' = floor(H * scale_factor)`` or ``size[0]``.
    """

    config_type: ClassVar[type[UpsampleConfig]] = UpsampleConfig

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        grid: str = "planar",
        config: UpsampleConfig | None = None,
    ) -> None:
        config = config or self.config_type()
        super().__init__(config.direction, in_channels, out_channels, grid)
        self.config = config

    def output_shape(self, x: torch.Tensor) -> tuple[int, int]:
        """The spatial output size for input ``x`` (raises ``ShapeError`` when it breaks the direction)."""
        cfg = self.config
        spatial = self.grid.spatial_shape(x)
        if cfg.size is None:
            # float(size) * factor, floored: torch's rule for scale_factor.
            size = tuple(math.floor(float(n) * f) for n, f in zip(spatial, cfg.scale_factor, strict=True))
            if min(size) < 1:
                raise ShapeError(
                    f"{cfg.direction}: scale_factor={cfg.scale_factor} turns x of shape {tuple(x.shape)} into an "
                    f"empty {size}; pass a larger factor or a size"
                )
            check_output_faces(cfg.direction, self.grid, x, size, scale_factor=cfg.scale_factor)
            return size  # type: ignore[return-value]
        size = cfg.size
        grows = cfg.direction == "upsample"
        if any((s < n) if grows else (s > n) for s, n in zip(size, spatial, strict=True)):
            raise ShapeError(
                f"{cfg.direction} never {'shrinks' if grows else 'grows'}: size={size} is "
                f"{'smaller' if grows else 'larger'} than the spatial size {spatial} of x of shape {tuple(x.shape)}"
            )
        check_output_faces(cfg.direction, self.grid, x, size, size=cfg.size)
        return size  # type: ignore[return-value]

    def _halo(self, spatial: tuple[int, int], size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        """On a spherical grid: the border (input pixels) the kernel reaches, and the integer ratios."""
        cfg = self.config
        upsampling = cfg.direction == "upsample"
        ratios = []
        for n, m in zip(spatial, size, strict=True):
            big, small = (m, n) if upsampling else (n, m)
            if big % small:
                raise ShapeError(
                    f"{cfg.direction} on grid {self.grid.name!r} needs an integer ratio between the face size "
                    f"{spatial} and the output {size}, so that the result is a grid of the same kind"
                )
            ratios.append(big // small)
        if cfg.mode in ("nearest", "area") or (cfg.mode == "bilinear" and not upsampling and not cfg.antialias):
            return 0, (ratios[0], ratios[1])  # every sample point lies inside its face
        reach = 2 if cfg.mode == "bicubic" else 1
        # Downsampling reads `reach` output pixels' worth of input; keep the halo a whole
        # number of output pixels so the crop is exact.
        return (reach if upsampling else reach * math.lcm(*ratios)), (ratios[0], ratios[1])

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: resampling has no place in the receptive-field arithmetic of :class:`~geoconv.sizes.Layer`.

        That arithmetic composes layers with integer strides >= 1; an upsampling has a
        stride of ``1 / f``, and a downsampling by a factor or to a size samples the input
        at fractional positions with a footprint that depends on the mode.
        """
        cfg = self.config
        how = f"size={cfg.size}" if cfg.size is not None else f"scale_factor={cfg.scale_factor}"
        raise ParameterError(
            f"{cfg.direction} resamples ({how}, mode={cfg.mode!r}) at fractional positions; the receptive-field "
            "arithmetic of geoconv.sizes.Layer covers layers with integer strides >= 1 only"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x, floating=True)
        size = self.output_shape(x)
        cfg = self.config
        settings = {"size": cfg.size} if cfg.size is not None else {"scale_factor": cfg.scale_factor}
        if not self.torch_pads_itself:
            return self._spherical(x, size, settings)
        interpolating = cfg.mode in _INTERPOLATING
        kwargs: dict[str, object] = {"mode": cfg.mode, "align_corners": cfg.align_corners if interpolating else None}
        if isinstance(cfg, DownsampleConfig) and interpolating:
            kwargs["antialias"] = cfg.antialias
        if cfg.size is None:
            # The factor itself (not output/input) maps coordinates, as F.interpolate does.
            kwargs["scale_factor"] = cfg.scale_factor
        else:
            kwargs["size"] = size
        return self.run_planar(x, lambda planes, _: _interpolate(planes, kwargs), (0, 0, 0, 0), size, settings=settings)

    def _spherical(self, x: torch.Tensor, size: tuple[int, int], settings: dict[str, object]) -> torch.Tensor:
        cfg = self.config
        if cfg.align_corners:
            raise ParameterError(
                f"align_corners=True has no meaning on grid {self.grid.name!r}: face corners are not sample points"
            )
        halo, (ratio_h, ratio_w) = self._halo(self.grid.spatial_shape(x), size)
        upsampling = cfg.direction == "upsample"

        def kernel(planes: torch.Tensor, _: tuple[int, int]) -> torch.Tensor:
            height, width = planes.shape[-2:]
            target = (height * ratio_h, width * ratio_w) if upsampling else (height // ratio_h, width // ratio_w)
            kwargs: dict[str, object] = {"size": target, "mode": cfg.mode}
            if cfg.mode in _INTERPOLATING:
                kwargs["align_corners"] = False
                if not upsampling:
                    kwargs["antialias"] = cfg.antialias
            y = _interpolate(planes, kwargs)
            # The halo, resampled, is cut off on every side.
            crop_h, crop_w = (halo * ratio_h, halo * ratio_w) if upsampling else (halo // ratio_h, halo // ratio_w)
            return y[..., crop_h : y.shape[-2] - crop_h, crop_w : y.shape[-1] - crop_w]

        # The grid's own padding (this op's padding_mode) continues each face across its borders.
        return self.run_planar(x, kernel, (halo, halo, halo, halo), size, settings=settings)

    def extra_repr(self) -> str:
        cfg = self.config
        how = f"size={cfg.size}" if cfg.size is not None else f"scale_factor={cfg.scale_factor}"
        extra = f", antialias={cfg.antialias}" if isinstance(cfg, DownsampleConfig) else ""
        return (
            f"{self.in_channels}, {how}, mode={cfg.mode!r}, align_corners={cfg.align_corners}{extra}, "
            f"grid={self.grid.name!r}"
        )


@register_op("upsample", grids=EVERY_GRID, config=UpsampleConfig, same_channels=True)
class Upsample(Resample):
    """Upsampling by a factor (default 2) or to a size: bilinear, nearest or bicubic.

    Keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left out.
    Never shrinks: ``scale_factor >= 1`` and ``size`` at least the input size.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H', W')`` with ``H' = floor(H * scale_factor)`` or ``size[0]``.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> up = build_op("upsample", 1, mode="nearest")
    >>> up(torch.tensor([[[[1.0, 2.0]]]])).tolist()
    [[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]]]
    >>> build_op("upsample", 3, size=(5, 7))(torch.randn(2, 3, 4, 4)).shape
    torch.Size([2, 3, 5, 7])
    """

    config_type = UpsampleConfig


@register_op("downsample", grids=EVERY_GRID, config=DownsampleConfig, same_channels=True)
class Downsample(Resample):
    """Downsampling by a factor (default 1/2) or to a size: bilinear, nearest, bicubic or area.

    Keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left out.
    Never grows: ``scale_factor <= 1`` and ``size`` at most the input size. With
    ``bilinear`` (the default) and factor 1/2 each output is the mean of a 2x2 block.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H', W')`` with ``H' = floor(H * scale_factor)`` or ``size[0]``.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> down = build_op("downsample", 1)
    >>> down(torch.arange(16.0).view(1, 1, 4, 4)).flatten().tolist()
    [2.5, 4.5, 10.5, 12.5]
    """

    config_type = DownsampleConfig
