r"""``disco_conv``: torch-harmonics' discrete-continuous (DISCO) convolution on the equirect grid.

An adapter to :class:`torch_harmonics.DiscreteContinuousConvS2` (Ocampo et al., ICLR 2023):
a filter of angular radius ``theta_cutoff`` built from a fixed basis (``basis_type``,
``kernel_shape``), integrated over the sphere by quadrature,

.. math::

    y_o(v) = b_o + \sum_{c} \sum_{k} w_{ock} \int_{S^2} \psi_k(R_v^{-1} u)\, x_c(u)\, du ,

where :math:`R_v` rotates the north pole onto the output point :math:`v`. Registered only when
``torch_harmonics`` imports: it is an optional extra (``pip install geoconv[disco]``), never a
dependency, because each torch-harmonics release pins one minor version of torch.

Grids. geoconv's equirect rows sit at colatitude :math:`(i + \frac12)\pi/H`; torch-harmonics has
no grid with cell-centred rows. Its ``"equiangular"`` grid (the default here) has the same
number of equally spaced rows but puts them at :math:`i\pi/(H-1)`, poles included
(Clenshaw–Curtis); ``"legendre-gauss"`` and ``"lobatto"`` put them at Gauss nodes. The adapter
reads the input's rows as the rows of the torch-harmonics grid ``th_grid``, so with the default
each row is taken to lie :math:`\pi (i - (H-1)/2) / (H (H-1))` away from its true colatitude:
exact at the equator, half a row (:math:`\pi/2H`) at the first and last rows. Longitudes agree
exactly (:math:`2\pi j/W` on both sides), so the op commutes exactly with longitude rolls by
multiples of ``stride`` pixels.

The weights are the adapter's own parameters, initialised exactly as torch-harmonics initialises
them; the torch-harmonics module (its sparse tensor :math:`\psi` depends on the input size) is
built at the first call for each input size and device, and called with those parameters.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_bool, check_float, check_int
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids import get_grid
from geoconv.ops._common import check_axis, check_input_size, check_op_input
from geoconv.ops.registry import PluginWarning, declare_missing_extra, register_op
from geoconv.sizes import Layer

__all__ = ["AVAILABLE", "DiscoConv", "DiscoConvConfig", "missing_extra_message"]

try:
    from torch_harmonics import DiscreteContinuousConvS2
except Exception as error:  # not installed, or built against another torch (undefined symbols)
    DiscreteContinuousConvS2 = None
    _REASON = f"torch_harmonics could not be imported ({type(error).__name__}: {error})"
    if importlib.util.find_spec("torch_harmonics") is not None:
        # Installed but broken: say so, rather than having the op silently missing.
        warnings.warn(
            f"{_REASON}; the op 'disco_conv' is not registered. torch-harmonics releases pin one minor "
            f"version of torch (this is torch {torch.__version__}).",
            PluginWarning,
            stacklevel=2,
        )
else:
    _REASON = ""

AVAILABLE: bool = DiscreteContinuousConvS2 is not None
"""Whether torch-harmonics imported, and so whether ``disco_conv`` is registered."""


def missing_extra_message() -> str:
    """What a user asking for ``disco_conv`` without torch-harmonics is told: the extra to install.

    >>> "pip install 'geoconv[disco]'" in missing_extra_message()
    True
    """
    reason = f" ({_REASON})" if _REASON else ""
    return (
        "op 'disco_conv' needs the optional extra torch-harmonics, which is not installed here; install it "
        f"with: pip install 'geoconv[disco]'{reason}"
    )


_CACHE_SIZE = 8


@dataclass
class DiscoConvConfig:
    """Parameters of ``disco_conv``, passed on to ``torch_harmonics.DiscreteContinuousConvS2``.

    Attributes
    ----------
    kernel_shape : int or (int, int)
        The filter basis size: ``(n_radial, n_azimuthal)`` for ``"piecewise linear"`` and
        ``"harmonic"``, an int ``n_max`` for ``"zernike"``.
    basis_type : str
        ``"piecewise linear"``, ``"harmonic"``, ``"zernike"``, ... as torch-harmonics names them.
    basis_norm_mode : str
        How torch-harmonics normalises the basis over each filter's support (``"nodal"``, ...).
    theta_cutoff : float, optional
        The filter's angular radius in radians; ``None`` lets torch-harmonics choose one
        latitude spacing of the output grid.
    groups : int
        Both channel counts must be divisible by it.
    bias : bool
        Add a learned bias (initialised to zero, as torch-harmonics does).
    stride : int
        Output grid ``(H / stride, W / stride)``; ``H`` and ``W`` must be divisible by it.
    th_grid : str
        The torch-harmonics grid the rows are read as, for input and output alike:
        ``"equiangular"`` (the nearest to equirect; see the module doc), ``"legendre-gauss"``,
        ``"lobatto"``, ``"equiangular-trapezoidal"``.
    """

    kernel_shape: int | tuple[int, int] = (3, 3)
    basis_type: str = "piecewise linear"
    basis_norm_mode: str = "nodal"
    theta_cutoff: float | None = None
    groups: int = 1
    bias: bool = True
    stride: int = 1
    th_grid: str = "equiangular"

    def __post_init__(self) -> None:
        if isinstance(self.kernel_shape, int) and not isinstance(self.kernel_shape, bool):
            self.kernel_shape = check_int("kernel_shape", self.kernel_shape, minimum=1)
        elif isinstance(self.kernel_shape, tuple | list) and len(self.kernel_shape) == 2:
            self.kernel_shape = tuple(  # type: ignore[assignment]
                check_int(f"kernel_shape[{i}]", k, minimum=1) for i, k in enumerate(self.kernel_shape)
            )
        else:
            raise ParameterError(f"kernel_shape must be an int or a pair of ints, got {self.kernel_shape!r}")
        for name in ("basis_type", "basis_norm_mode", "th_grid"):
            if not isinstance(getattr(self, name), str):
                raise ParameterError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.theta_cutoff is not None:
            self.theta_cutoff = check_float("theta_cutoff", self.theta_cutoff, positive=True)
        self.groups = check_int("groups", self.groups, minimum=1)
        self.bias = check_bool("bias", self.bias)
        self.stride = check_int("stride", self.stride, minimum=1)


class DiscoConv(nn.Module):
    r"""DISCO convolution on the sphere: torch-harmonics' ``DiscreteContinuousConvS2`` on equirect.

    Local, anisotropic filters integrated over the sphere by quadrature (Ocampo et al. 2023);
    see :mod:`geoconv.ops.disco` for how torch-harmonics' grids map onto equirect. Registered
    as ``disco_conv`` only when torch-harmonics is installed.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts; both divisible by ``groups``.
    grid : str
        ``"equirect"``.
    config : DiscoConvConfig
        Filter basis, cutoff, groups, bias, stride, torch-harmonics grid.

    Attributes
    ----------
    weight : torch.nn.Parameter
        Shape ``(C_out, C_in / groups, K)`` with ``K`` the basis size, as in torch-harmonics.
    bias : torch.nn.Parameter or None
        Shape ``(C_out,)``.

    Shapes
    ------
    ``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> from geoconv.ops.disco import AVAILABLE
    >>> if AVAILABLE:
    ...     conv = build_op("disco_conv", 2, 4, grid="equirect", stride=2)
    ...     assert conv(torch.randn(1, 2, 16, 32)).shape == (1, 4, 8, 16)
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "equirect", config: DiscoConvConfig | None = None
    ) -> None:
        if not AVAILABLE:
            raise GeoconvError(missing_extra_message())
        super().__init__()
        config = config or DiscoConvConfig()
        self.config = config
        self.grid = get_grid(grid)
        self.in_channels, self.out_channels = in_channels, out_channels
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % config.groups:
                raise ParameterError(f"{name}={channels} must be divisible by groups={config.groups}")
        # A small instance checks the configuration with torch-harmonics itself (basis names and
        # norm modes differ between its releases) and gives its initial weights: it draws them
        # from the global generator exactly as constructing DiscreteContinuousConvS2 would.
        s = config.stride
        with warnings.catch_warnings():
            # Warnings about this throwaway size (e.g. its default theta_cutoff) would mislead;
            # the module built for the real input size gives them.
            warnings.simplefilter("ignore")
            probe = self._torch_harmonics((4 * s, 8 * s))
        self.weight = nn.Parameter(probe.weight.detach().clone())
        self.bias = nn.Parameter(probe.bias.detach().clone()) if probe.bias is not None else None
        self._convs: OrderedDict[tuple[Any, ...], nn.Module] = OrderedDict()

    def _torch_harmonics(self, in_shape: tuple[int, int]) -> nn.Module:
        cfg = self.config
        out_shape = (in_shape[0] // cfg.stride, in_shape[1] // cfg.stride)
        try:
            return DiscreteContinuousConvS2(
                self.in_channels,
                self.out_channels,
                in_shape=in_shape,
                out_shape=out_shape,
                kernel_shape=cfg.kernel_shape,
                basis_type=cfg.basis_type,
                basis_norm_mode=cfg.basis_norm_mode,
                groups=cfg.groups,
                grid_in=cfg.th_grid,
                grid_out=cfg.th_grid,
                bias=cfg.bias,
                theta_cutoff=cfg.theta_cutoff,
            )
        except (ValueError, TypeError, NotImplementedError) as error:
            raise ParameterError(
                f"torch-harmonics rejected disco_conv(kernel_shape={cfg.kernel_shape!r}, basis_type="
                f"{cfg.basis_type!r}, basis_norm_mode={cfg.basis_norm_mode!r}, th_grid={cfg.th_grid!r}, "
                f"theta_cutoff={cfg.theta_cutoff!r}) for input (H, W)={in_shape}: {error}"
            ) from error

    def _conv_for(self, height: int, width: int, device: torch.device) -> nn.Module:
        key = (height, width, device)
        conv = self._convs.get(key)
        if conv is None:
            # Its throwaway weights would otherwise advance the caller's random stream at the first call.
            with torch.random.fork_rng(devices=[]):
                conv = self._torch_harmonics((height, width)).to(device)
            self._convs[key] = conv
            while len(self._convs) > _CACHE_SIZE:
                self._convs.popitem(last=False)
        else:
            self._convs.move_to_end(key)
        return conv

    def _check(self, x: object) -> torch.Tensor:
        # torch-harmonics casts the input itself: no dtype match is required.
        x = check_op_input(
            "disco_conv", self.grid, x, self.in_channels, floating=True, like=self.weight, match_dtype=False
        )
        height, width = x.shape[-2:]
        s = self.config.stride
        if height % s or width % s or (width // s) % 2 or height // s < 2:
            raise ShapeError(
                f"disco_conv with stride={s} needs H and W divisible by {s}, with H/{s} >= 2 and W/{s} even, "
                f"got x of shape {tuple(x.shape)}"
            )
        return x

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: the filter has a fixed angular radius, so its footprint in pixels depends on the latitude.

        A disc of radius ``theta_cutoff`` covers about ``1 / sin(colatitude)`` times more
        equirect columns near the poles than at the equator; no one planar kernel size
        describes it.
        """
        check_axis(axis)
        check_input_size(input_size)
        raise ParameterError(
            "disco_conv filters over a disc of fixed angular radius (theta_cutoff), whose width in equirect "
            "columns grows towards the poles; no one planar kernel (geoconv.sizes.Layer) describes it"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x)
        conv = self._conv_for(int(x.shape[-2]), int(x.shape[-1]), x.device)
        params = {"weight": self.weight}
        if self.bias is not None:
            params["bias"] = self.bias
        return torch.func.functional_call(conv, params, (x,))

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_shape={cfg.kernel_shape}, basis_type={cfg.basis_type!r}, "
            f"theta_cutoff={cfg.theta_cutoff}, groups={cfg.groups}, stride={cfg.stride}, bias={cfg.bias}, "
            f"th_grid={cfg.th_grid!r}"
        )


if AVAILABLE:
    register_op("disco_conv", grids=("equirect",), config=DiscoConvConfig)(DiscoConv)
else:
    declare_missing_extra("disco_conv", missing_extra_message())
