r"""An example geoconv plugin: a fixed finite-difference Laplacian, registered as ``example_laplacian``.

geoconv finds this module through the entry point this distribution declares in the
``geoconv.ops`` group (see ``pyproject.toml``). The first time geoconv's registry is read
it imports this module, and the :func:`geoconv.register_op` decorator below adds the op,
recorded as coming from ``geoconv-example-plugin``. Nothing else is needed: after
``pip install`` the op is in ``geoconv.list_ops()``, ``geoconv ops`` and every config
that names ops.

The op only uses geoconv's public API (``register_op``, :mod:`geoconv.errors` and
:class:`geoconv.sizes.Layer`), as a third-party plugin should. Its :meth:`Laplacian.layers`
describes its geometry, so geoconv's locality probes measure it like a built-in op
(``python experiments/run.py experiment=locality op=example_laplacian``), and
:func:`geoconv.testing.assert_op_contract` checks it keeps the op contract.

Examples
--------
>>> import torch
>>> import geoconv
>>> lap = geoconv.build_op("example_laplacian", 1, spacing=0.5)
>>> i, j = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
>>> f = ((0.5 * i) ** 2 + (0.5 * j) ** 2)[None, None]  # the Laplacian of x² + y² is 4
>>> lap(f)[0, 0, 1:-1, 1:-1].unique()
tensor([4.])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from geoconv import register_op
from geoconv.errors import ParameterError, ShapeError, unknown_name
from geoconv.sizes import Layer

__all__ = ["STENCILS", "Laplacian", "LaplacianConfig"]

__version__ = "0.1.0"

STENCILS: dict[str, tuple[tuple[tuple[float, ...], ...], float]] = {
    "5-point": (((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0)), 1.0),
    "9-point": (((1.0, 4.0, 1.0), (4.0, -20.0, 4.0), (1.0, 4.0, 1.0)), 1.0 / 6.0),
}
"""Stencil name to (3×3 weights, factor); the Laplacian is ``factor * (weights ⋆ x) / h²``."""

PADDING_MODES = ("replicate", "reflect", "circular", "zeros")


@dataclass
class LaplacianConfig:
    """Parameters of ``example_laplacian``.

    Attributes
    ----------
    stencil : {"5-point", "9-point"}
        ``5-point`` uses the four nearest neighbours; ``9-point`` also the diagonals, which
        makes the leading error term isotropic. Both are exact for quadratic polynomials.
    spacing : float
        The grid spacing h (> 0); the stencil is divided by h².
    padding_mode : {"replicate", "reflect", "circular", "zeros"}
        What lies beyond the border: ``replicate`` repeats the edge pixel, ``reflect``
        mirrors about it, ``circular`` wraps around (a periodic domain), ``zeros`` is zero.
    """

    stencil: Literal["5-point", "9-point"] = "5-point"
    spacing: float = 1.0
    padding_mode: Literal["replicate", "reflect", "circular", "zeros"] = "replicate"

    def __post_init__(self) -> None:
        # build_op checks the Literal types already; this also covers direct construction.
        if self.stencil not in STENCILS:
            raise unknown_name("stencil", self.stencil, STENCILS)
        if self.padding_mode not in PADDING_MODES:
            raise unknown_name("padding_mode", self.padding_mode, PADDING_MODES)
        if isinstance(self.spacing, bool) or not isinstance(self.spacing, (int, float)) or not self.spacing > 0:
            raise ParameterError(f"spacing must be a number > 0, got {self.spacing!r}")
        self.spacing = float(self.spacing)


@register_op("example_laplacian", grids=("planar",), config=LaplacianConfig, same_channels=True)
class Laplacian(nn.Module):
    r"""Discrete Laplacian of each channel: a fixed (not learned) depthwise 3×3 stencil.

    With the 5-point stencil and grid spacing :math:`h`,

    .. math::

        (\Delta_h x)_{ij} = \frac{x_{i-1,j} + x_{i+1,j} + x_{i,j-1} + x_{i,j+1} - 4\,x_{ij}}{h^2},

    and with the 9-point stencil :math:`\frac{1}{6h^2}\bigl(4\,\Sigma_{\text{edges}} +
    \Sigma_{\text{corners}} - 20\,x_{ij}\bigr)`. Pixels beyond the border come from
    ``padding_mode``. The op has no trainable parameters and keeps the channel count.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts; equal.
    grid : str
        ``"planar"``.
    config : LaplacianConfig
        Stencil, spacing and padding mode.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H, W)``, floating point; ``reflect`` needs ``H, W >= 2``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "planar", config: LaplacianConfig | None = None
    ) -> None:
        super().__init__()
        config = config or LaplacianConfig()
        if out_channels != in_channels:
            raise ParameterError(f"example_laplacian keeps the channel count: got {in_channels} -> {out_channels}")
        self.config = config
        self.channels = in_channels
        weights, factor = STENCILS[config.stencil]
        # The integer weights are exact in every dtype; the scale stays a Python float so that
        # a float64 module is as accurate as one built in float64 (1/6 is not exact in float32).
        self.scale = factor / config.spacing**2
        kernel = torch.tensor(weights, dtype=torch.get_default_dtype())
        # Derived from the config, so not saved in state_dict; a buffer so that .to() moves it.
        self.register_buffer("weight", kernel.expand(in_channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the stencil to every channel of ``x`` of shape ``(B, C, H, W)``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"x must have shape (B, {self.channels}, H, W), got {shape}")
        if not x.is_floating_point():
            raise ShapeError(f"x must have a floating-point dtype, got {x.dtype}")
        mode = self.config.padding_mode
        if mode == "reflect" and min(x.shape[-2:]) < 2:
            raise ShapeError(f"padding_mode='reflect' needs H, W >= 2, got spatial shape {tuple(x.shape[-2:])}")
        padded = F.pad(x, (1, 1, 1, 1), mode="constant" if mode == "zeros" else mode)
        return F.conv2d(padded, self.weight.to(x.dtype), groups=self.channels) * self.scale

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """The planar layers this op applies, for receptive-field arithmetic.

        One 3×3 stencil with stride 1, dilation 1 and one pixel of padding on each side, on
        either axis and at any input size. geoconv's locality probes
        (:func:`geoconv.probes.locality.layers_of`) call this method; an op without it cannot
        be measured there.

        Parameters
        ----------
        input_size : (H, W), optional
            The input's face size; unused (a stride of 1 pads the same at every size).
        axis : int
            ``-2`` (rows) or ``-1`` (columns).

        Returns
        -------
        list of geoconv.sizes.Layer
            ``[Layer(kernel_size=3, stride=1, padding=1, dilation=1)]``.

        Examples
        --------
        >>> from geoconv_example_plugin import Laplacian
        >>> Laplacian(1, 1).layers()
        [Layer(kernel_size=3, stride=1, padding=1, dilation=1)]
        """
        if axis not in (-2, -1):
            raise ParameterError(f"axis must be -2 (rows) or -1 (columns), got {axis!r}")
        return [Layer(kernel_size=3, stride=1, padding=1, dilation=1)]

    def extra_repr(self) -> str:
        cfg = self.config
        return f"{self.channels}, stencil={cfg.stencil!r}, spacing={cfg.spacing}, padding_mode={cfg.padding_mode!r}"
