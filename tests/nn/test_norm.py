"""make_norm against torch's own layers on 4-D input and against the formula on any layout."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.nn import NORMS, InstanceNorm, make_norm

EPS = 1e-5


def randomise_affine(*modules: nn.Module, seed: int = 0) -> None:
    """Give the modules the same random weight and bias (torch starts them at 1 and 0)."""
    generator = torch.Generator().manual_seed(seed)
    for name in ("weight", "bias"):
        reference = getattr(modules[0], name)
        if reference is None:
            continue
        values = torch.randn(reference.shape, generator=generator, dtype=reference.dtype)
        for module in modules:
            with torch.no_grad():
                getattr(module, name).copy_(values)


def test_norm_names():
    assert NORMS == ("batch", "group", "instance", "none")


def test_batch_equals_batchnorm2d_in_train_and_eval():
    ours, theirs = make_norm("batch", 5), nn.BatchNorm2d(5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    randomise_affine(ours, theirs)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):  # several steps, so the running statistics move
        x = 3 * torch.randn(4, 5, 7, 6, generator=generator) + 2
        torch.testing.assert_close(ours(x), theirs(x))
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)
    assert ours.num_batches_tracked.item() == 3
    ours.eval()
    theirs.eval()
    x = torch.randn(2, 5, 3, 9, generator=generator)
    torch.testing.assert_close(ours(x), theirs(x))


def test_batch_state_dict_loads_into_batchnorm2d():
    ours = make_norm("batch", 3)
    ours(torch.randn(2, 3, 4, 4))
    theirs = nn.BatchNorm2d(3)
    theirs.load_state_dict(ours.state_dict())
    torch.testing.assert_close(theirs.running_mean, ours.running_mean)


@pytest.mark.parametrize("affine, track", [(False, False), (True, True)])
def test_instance_equals_instancenorm2d(affine, track):
    ours = InstanceNorm(4, affine=affine, track_running_stats=track)
    theirs = nn.InstanceNorm2d(4, affine=affine, track_running_stats=track)
    randomise_affine(ours, theirs)
    generator = torch.Generator().manual_seed(2)
    for _ in range(2):
        x = 2 * torch.randn(3, 4, 5, 8, generator=generator) - 1
        torch.testing.assert_close(ours(x), theirs(x))
    ours.eval()
    theirs.eval()
    x = torch.randn(3, 4, 5, 8, generator=generator)
    torch.testing.assert_close(ours(x), theirs(x))


def test_make_norm_instance_has_torch_defaults():
    norm = make_norm("instance", 6)
    assert norm.weight is None and norm.running_mean is None
    x = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(norm(x), nn.InstanceNorm2d(6)(x))


def test_group_equals_groupnorm():
    ours, theirs = make_norm("group", 12, groups=3), nn.GroupNorm(3, 12)
    randomise_affine(ours, theirs)
    x = torch.randn(2, 12, 5, 5) * 4
    torch.testing.assert_close(ours(x), theirs(x))
    assert ours.num_groups == 3


def test_none_is_identity():
    x = torch.randn(2, 3, 4, 4)
    assert make_norm("none", 3)(x) is x


def closed_form(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + EPS)


@pytest.mark.parametrize("layout", [(6, 4, 4), (12, 2, 2)], ids=["cubemap", "healpix"])
def test_batch_on_spherical_layout_is_the_formula(layout):
    norm = make_norm("batch", 3).double()
    x = torch.randn(4, 3, *layout, dtype=torch.float64) * 5 + 1
    y = norm(x)
    dims = (0, 2, 3, 4)
    torch.testing.assert_close(y, closed_form(x, dims))
    torch.testing.assert_close(y.mean(dim=dims), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(y.var(dim=dims, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)
    # Running statistics: momentum 0.1 towards the batch mean and the unbiased variance.
    torch.testing.assert_close(norm.running_mean, 0.1 * x.mean(dim=dims))
    torch.testing.assert_close(norm.running_var, 0.9 + 0.1 * x.var(dim=dims, unbiased=True))
    norm.eval()
    expected = (x - norm.running_mean.view(1, 3, 1, 1, 1)) / torch.sqrt(norm.running_var.view(1, 3, 1, 1, 1) + EPS)
    torch.testing.assert_close(norm(x), expected)


def test_batch_on_faces_equals_batchnorm2d_on_folded_faces():
    """Statistics over all faces together: the same as BatchNorm2d on (B * faces, C, F, F)."""
    x = torch.randn(2, 3, 6, 5, 5)
    folded = x.transpose(1, 2).reshape(12, 3, 5, 5)
    expected = nn.BatchNorm2d(3)(folded).reshape(2, 6, 3, 5, 5).transpose(1, 2)
    torch.testing.assert_close(make_norm("batch", 3)(x), expected)


def test_instance_on_spherical_layout_is_the_formula():
    x = torch.randn(3, 2, 12, 4, 4, dtype=torch.float64) * 3 - 2
    y = make_norm("instance", 2)(x)
    torch.testing.assert_close(y, closed_form(x, (2, 3, 4)))


def test_group_on_spherical_layout_is_the_formula():
    norm = make_norm("group", 6, groups=2).double()
    randomise_affine(norm)
    x = torch.randn(2, 6, 6, 3, 3, dtype=torch.float64)
    grouped = x.reshape(2, 2, 3, 6, 3, 3)
    expected = closed_form(grouped, (2, 3, 4, 5)).reshape(x.shape)
    expected = expected * norm.weight.view(1, 6, 1, 1, 1) + norm.bias.view(1, 6, 1, 1, 1)
    torch.testing.assert_close(norm(x), expected)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_batch_formula_for_any_number_of_spatial_dims(batch, channels, spatial):
    x = torch.randn(batch, channels, *spatial, dtype=torch.float64)
    if batch * torch.Size(spatial).numel() < 2:
        with pytest.raises(ShapeError, match="more than one value"):
            make_norm("batch", channels).double()(x)
        return
    dims = (0, *range(2, x.dim()))
    torch.testing.assert_close(make_norm("batch", channels).double()(x), closed_form(x, dims))


def test_non_contiguous_input():
    x = torch.randn(2, 4, 5, 6).transpose(2, 3)
    torch.testing.assert_close(make_norm("batch", 4)(x), nn.BatchNorm2d(4)(x))
    torch.testing.assert_close(make_norm("instance", 4)(x), nn.InstanceNorm2d(4)(x))


def test_unknown_kind_suggests():
    with pytest.raises(UnknownNameError, match=r"unknown norm: 'bacth'; did you mean 'batch'") as info:
        make_norm("bacth", 4)
    assert info.value.suggestions[0] == "batch"
    with pytest.raises(GeoconvError, match="norm"):
        make_norm(None, 4)


@pytest.mark.parametrize("channels", [0, -2, 2.0, True])
def test_bad_channels(channels):
    with pytest.raises(ParameterError, match="channels"):
        make_norm("batch", channels)


def test_groups_must_divide_channels():
    with pytest.raises(ParameterError, match=r"groups=8.*channels=12.*\[1, 2, 3, 4, 6, 12\]"):
        make_norm("group", 12)
    with pytest.raises(ParameterError, match="groups"):
        make_norm("group", 12, groups=0)
    assert make_norm("batch", 12, groups=5) is not None  # groups only matter for group norm


@pytest.mark.parametrize("kind", ["batch", "group", "instance"])
def test_bad_input_shapes(kind):
    norm = make_norm(kind, 4, groups=2)
    with pytest.raises(ShapeError, match=r"\(B, C, \*spatial\)"):
        norm(torch.randn(2, 4))
    with pytest.raises(ShapeError, match="4 channels"):
        norm(torch.randn(2, 3, 5, 5))
    with pytest.raises(ShapeError, match="torch.Tensor"):
        norm([[1.0]])


def test_single_value_per_channel():
    with pytest.raises(ShapeError, match="more than one value per channel"):
        make_norm("batch", 2)(torch.randn(1, 2, 1, 1))
    with pytest.raises(ShapeError, match="more than one pixel"):
        make_norm("instance", 2)(torch.randn(3, 2, 1, 1))
    evaluating = make_norm("batch", 2).eval()
    assert evaluating(torch.randn(1, 2, 1, 1)).shape == (1, 2, 1, 1)
