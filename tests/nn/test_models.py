"""OpStack and Classifier: what they build, and the symmetries their pieces promise."""

from __future__ import annotations

import pytest
import torch

import geoconv
from geoconv.errors import GeoconvError
from geoconv.grids import get_grid
from geoconv.nn.models import Classifier, OpStack


def test_op_stack_is_the_composition_of_its_ops() -> None:
    torch.manual_seed(0)
    stack = OpStack("conv", 2, channels=3, depth=2, activation="tanh", params={"kernel_size": 5}).double()
    convs = [m for m in stack if isinstance(m, geoconv.ops.Conv)]
    assert len(convs) == 2 and convs[0].weight.shape == (3, 2, 5, 5)
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    expected = convs[1](torch.tanh(convs[0](x)))
    torch.testing.assert_close(stack(x), expected, rtol=0, atol=0)


def test_pooling_stack_keeps_channels() -> None:
    stack = OpStack("max_pool", 3, channels=8, depth=2, grid="healpix")
    assert stack.out_channels == 3
    assert stack(torch.randn(1, 3, 12, 8, 8)).shape == (1, 3, 12, 2, 2)


def test_classifier_honours_the_op_geometry() -> None:
    params = {"kernel_size": 3, "dilation": 2, "padding_mode": "circular"}
    classifier = Classifier("conv", 3, 4, params=params, widths=(5,))
    conv = classifier.blocks[0].conv
    assert conv.config.dilation == (2, 2) and conv.padding_mode == "circular"
    assert Classifier("conv", 3, 4, params=params, padding_mode="zeros").blocks[0].conv.padding_mode == "zeros"


@pytest.mark.parametrize("grid", ["planar", "equirect", "healpix"])
def test_classifier_logits_are_invariant_to_the_grid_symmetry(grid: str) -> None:
    # Stride 1, circular/own padding and global mean pooling: exact invariance.
    torch.manual_seed(0)
    mode = "circular" if grid == "planar" else None
    classifier = Classifier("conv", 2, 5, grid=grid, widths=(4, 6), stride=1, padding_mode=mode).double().eval()
    x = torch.randn(get_grid(grid).shape(2, 2, 8), dtype=torch.float64)
    turned = get_grid(grid).quarter_turn(x, 1) if grid == "healpix" else torch.roll(x, 3, dims=-1)
    torch.testing.assert_close(classifier(turned), classifier(x), rtol=1e-10, atol=1e-12)


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(GeoconvError, match="widths"):
        Classifier("conv", 3, 4, widths=())
    with pytest.raises(GeoconvError, match="classes"):
        Classifier("conv", 3, 0)
    with pytest.raises(GeoconvError, match="depth"):
        OpStack("conv", 3, depth=0)
    with pytest.raises(GeoconvError, match="did you mean 'conv'"):
        OpStack("cnv", 3)
