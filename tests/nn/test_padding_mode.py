"""The model-wide ``padding_mode``: one rule (``OpSpec.with_padding_mode``), followed by every model.

``None`` keeps the op's own padding; a mode overrides it (checked by value: circular padding
makes a stack exactly equivariant to circular shifts, reflect padding does not); a mode for an
op without padding is an error everywhere, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from geoconv import get_op
from geoconv.errors import ParameterError
from geoconv.nn import EncoderBlock, UNet
from geoconv.nn.models import Classifier, OpStack, op_params


def test_the_rule() -> None:
    conv = get_op("conv")
    params = {"kernel_size": 5, "padding_mode": "reflect"}
    assert conv.with_padding_mode(params, None) == params  # neutral
    assert conv.with_padding_mode(params, None) is not params  # a copy: the caller's dict is never changed
    assert conv.with_padding_mode(params, "circular") == {"kernel_size": 5, "padding_mode": "circular"}
    assert params["padding_mode"] == "reflect"
    assert conv.with_padding_mode(None, "zeros") == {"padding_mode": "zeros"}
    assert get_op("cheb_conv").with_padding_mode({"K": 2}, None) == {"K": 2}
    for name in ("cheb_conv", "spectral_conv", "upsample", "neighbour_conv"):
        with pytest.raises(ParameterError, match=rf"padding_mode='zeros' is set, but op '{name}' has no padding"):
            get_op(name).with_padding_mode({}, "zeros")
    assert op_params("conv", params, "circular") == conv.with_padding_mode(params, "circular")


def _roll_error(model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(torch.roll(x, (3, 2), (-2, -1))) - torch.roll(model(x), (3, 2), (-2, -1))).abs().max())


def test_the_model_wide_mode_overrides_the_ops_own_by_value() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 2, 12, 12, dtype=torch.float64)
    own = OpStack("conv", 2, 3, depth=2, params={"padding_mode": "reflect"}).double()
    overridden = OpStack("conv", 2, 3, depth=2, params={"padding_mode": "reflect"}, padding_mode="circular").double()
    assert _roll_error(own, x) > 1e-3
    assert _roll_error(overridden, x) < 1e-12
    assert {layer.padding_mode for layer in overridden if hasattr(layer, "padding_mode")} == {"circular"}
    classifier = Classifier(
        "conv", 2, 4, widths=(3,), stride=1, params={"padding_mode": "reflect"}, padding_mode="zeros"
    )
    assert classifier.blocks[0].conv.padding_mode == "zeros"
    assert EncoderBlock(2, 3, pool="blur_pool").pool.padding_mode == "reflect"  # None keeps the op's default


BUILDERS: list[tuple[str, Callable[[], nn.Module]]] = [
    ("OpStack", lambda: OpStack("spectral_conv", 2, 3, grid="equirect", padding_mode="zeros")),
    (
        "Classifier",
        lambda: Classifier("cheb_conv", 2, 4, grid="healpix", stride=1, pool="avg_pool", padding_mode="zeros"),
    ),
    ("UNet", lambda: UNet("spectral_conv", 2, 1, grid="equirect", down="avg_pool", padding_mode="zeros")),
    ("EncoderBlock", lambda: EncoderBlock(2, 3, grid="healpix", conv="cheb_conv", stride=1, padding_mode="zeros")),
]


@pytest.mark.parametrize(("name", "build"), BUILDERS, ids=[b[0] for b in BUILDERS])
def test_a_mode_for_an_op_without_padding_is_refused_everywhere(name: str, build: Callable[[], nn.Module]) -> None:
    # OpStack and UNet silently dropped it; the blocks said "unknown parameter".
    with pytest.raises(ParameterError, match="has no padding; leave padding_mode unset for it"):
        build()


def test_none_is_neutral_for_ops_without_padding() -> None:
    assert len(OpStack("spectral_conv", 2, 3, depth=1, grid="equirect")) == 1
    assert UNet("spectral_conv", 2, 1, grid="equirect", widths=(4, 8), down="avg_pool").op == "spectral_conv"
