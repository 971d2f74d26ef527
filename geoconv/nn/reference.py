r"""The two models of Cohen et al. (2018, "Spherical CNNs", Table 1) that Spherical MNIST is judged by.

- :class:`PlainCNN` (model kind ``cnn``): convolutions with a stride, ReLU, then the
  *flattened* feature map into a linear layer. With ``widths=[32, 64]``, 5x5 kernels, stride 3
  and ``"valid"`` padding it is the paper's planar baseline (``variant=planar_cohen``): nothing in
  it is rotation invariant, which is what NR/R measures.
- :class:`S2CNN` (model kind ``s2cnn``): ``s2_conv`` (S² → SO(3)), ReLU, ``so3_conv`` layers
  (SO(3) → SO(3)), ReLU, ``so3_integrate`` (the Haar mean: invariant features), a batch norm of
  those features (``norm="none"`` leaves it out, as the paper), a linear layer.
  With ``widths=[20, 40]`` and band limits 30 → 10 → 6 it is the paper's S2CNN
  (``variant=s2cnn``); it is SO(3)-invariant up to the sampling of its input.

Both are built from registered ops (:func:`geoconv.build_op`), so a plugin op can stand in for
the first layer.

Examples
--------
>>> import torch
>>> cnn = PlainCNN("conv", 1, classes=10, grid="equirect", widths=[4, 8],
...                params={"kernel_size": 5, "stride": 3, "padding": "valid"})
>>> cnn(torch.zeros(2, 1, 20, 40)).shape
torch.Size([2, 10])
>>> s2 = S2CNN("s2_conv", 1, classes=10, widths=[3, 5], bands=[4, 3])
>>> s2(torch.zeros(2, 1, 12, 24)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_bool, check_choice, check_int
from geoconv.errors import ParameterError
from geoconv.ops.activations import make_activation
from geoconv.ops.registry import build_op, get_op

__all__ = ["PlainCNN", "S2CNN"]


def _widths(name: str, values: Sequence[int]) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) == 0:
        raise ParameterError(f"{name} must be a non-empty list of channel counts, got {values!r}")
    return [check_int(f"{name}[{i}]", value, minimum=1) for i, value in enumerate(values)]


class PlainCNN(nn.Module):
    """Strided convolutions, activations, the flattened feature map, a linear layer.

    Parameters
    ----------
    op : str
        A registered convolution (``conv`` for the paper's planar baseline).
    in_channels, classes : int
        Input channels; classes of the linear head.
    grid : str
        The grid of the input (``equirect`` for Spherical MNIST; ``planar`` for images).
    widths : sequence of int
        Output channels of each convolution.
    params : mapping, optional
        The op's parameters, the same for every layer (``kernel_size``, ``stride``, ``padding``).
    padding_mode : str, optional
        Overrides the op's padding mode.
    activation : str
        After each convolution.
    flat : bool
        Convolve the map's pixel array as a flat image (grid ``planar``), whatever ``grid`` is:
        the paper's baseline sees the 60x60 equirect map as a picture, and a strided ``"valid"``
        conv's output need not be a valid map of ``grid`` (an odd width on equirect). ``False``
        builds the ops on ``grid`` with its padding.

    Notes
    -----
    The head is an :class:`torch.nn.LazyLinear`: the flattened size depends on the input's
    resolution, known at the first forward pass (the training engine runs one before training).

    Shapes
    ------
    ``(B, C, *spatial) -> (B, classes)``.
    """

    def __init__(
        self,
        op: str,
        in_channels: int,
        classes: int,
        grid: str = "planar",
        widths: Sequence[int] = (32, 64),
        params: Mapping[str, Any] | None = None,
        padding_mode: str | None = None,
        activation: str = "relu",
        flat: bool = True,
    ) -> None:
        super().__init__()
        classes = check_int("classes", classes, minimum=1)
        params = get_op(op).with_padding_mode(params, padding_mode)
        grid = "planar" if check_bool("flat", flat) else grid
        layers: list[nn.Module] = []
        width = check_int("in_channels", in_channels, minimum=1)
        for out in _widths("widths", widths):
            layers += [build_op(op, width, out, grid=grid, **params), make_activation(activation)]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.LazyLinear(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class S2CNN(nn.Module):
    r"""Cohen et al.'s spherical CNN: ``s2_conv``, ``so3_conv`` ..., ``so3_integrate``, a linear layer.

    .. math::

        x \in \mathbb R^{C \times 2b_0 \times W}
        \xrightarrow{\text{s2\_conv}} h_1 \in \mathbb R^{c_1 \times (2b_1)^3}
        \xrightarrow{\text{so3\_conv}} \cdots h_n
        \xrightarrow{\int_{SO(3)}} \mathbb R^{c_n} \xrightarrow{\text{linear}} \mathbb R^{\text{classes}},

    a ReLU after every correlation. Each correlation is equivariant, the pointwise ReLU on the
    SOFT grid is equivariant up to sampling, and the Haar integral is invariant.

    Parameters
    ----------
    op : str
        The first layer: ``s2_conv`` (or a plugin op with the same layouts).
    in_channels, classes : int
        Input channels (the equirect map's); classes of the linear head.
    grid : str
        ``"equirect"``: the input is ``(B, C, 2b_0, 2b_0)`` or ``(B, C, 2b_0, 4b_0)``.
    widths : sequence of int
        Channels of each correlation: the first is the ``s2_conv``'s, the others ``so3_conv``'s.
    bands : sequence of int
        The output band limit of each correlation, as many as ``widths``, non-increasing.
    params : mapping, optional
        The first layer's parameters (its kernel grid, ``bias``); its band limits come from
        ``bands`` and the input.
    padding_mode : str, optional
        Must be ``None``: these ops do not pad.
    so3_params : mapping, optional
        Parameters of every ``so3_conv`` (its kernel grid, ``bias``).
    activation : str
        After each correlation.
    norm : {"batch", "none"}
        ``batch``: a :class:`torch.nn.BatchNorm1d` on the invariant features before the head
        (geoconv's default); ``none``: the paper's model exactly. The Haar mean of a digit's
        response is small (about 0.04 at initialisation: a digit covers a few percent of the
        sphere), so the head's logits move little per Adam step; s2cnn's own code feeds raw
        bytes (0-255) and sums where this op averages. Normalising the features, which are
        already invariant, keeps the model invariant and trains much faster (cross-entropy after
        80 steps on 2,560 digits: 1.43 against 2.13).

    Shapes
    ------
    ``(B, C, 2b_0, W) -> (B, classes)``.
    """

    def __init__(
        self,
        op: str,
        in_channels: int,
        classes: int,
        grid: str = "equirect",
        widths: Sequence[int] = (20, 40),
        bands: Sequence[int] = (10, 6),
        params: Mapping[str, Any] | None = None,
        padding_mode: str | None = None,
        so3_params: Mapping[str, Any] | None = None,
        activation: str = "relu",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        classes = check_int("classes", classes, minimum=1)
        norm = check_choice("norm", norm, ("batch", "none"))
        widths, bands = _widths("widths", widths), _widths("bands", bands)
        if len(bands) != len(widths):
            raise ParameterError(
                f"bands must give one output band limit per layer: {len(widths)} widths {widths}, "
                f"got {len(bands)} bands {bands}"
            )
        if any(later > earlier for earlier, later in itertools.pairwise(bands)):
            raise ParameterError(f"bands must not increase from layer to layer (b_out <= b_in), got {bands}")
        first = {k: v for k, v in get_op(op).with_padding_mode(params, padding_mode).items() if k != "b_out"}
        layers: list[nn.Module] = [build_op(op, in_channels, widths[0], grid=grid, b_out=bands[0], **first)]
        layers.append(make_activation(activation))
        for (before, after), (b_in, b_out) in zip(itertools.pairwise(widths), itertools.pairwise(bands), strict=True):
            extra = dict(so3_params or {})
            layers += [build_op("so3_conv", before, after, grid=grid, b_in=b_in, b_out=b_out, **extra)]
            layers.append(make_activation(activation))
        layers.append(build_op("so3_integrate", widths[-1], grid=grid))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(widths[-1]))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
