"""The contract every registered op keeps, on every implemented grid it supports.

Each op is built from its config defaults and checked with
:func:`geoconv.testing.assert_op_contract` (the assertion plugin authors use), so an op
added later (plugins included) is held to the same contract without a line of test code:
output in the grid's layout, finite, batch items independent, gradients for the input and
every parameter, float64 agreeing with float32, a state_dict round trip, determinism under
a seed, an empty batch, and GeoconvErrors naming the shape for bad input. The ops known to
be affine are also checked for affinity. The registry side: defaults for every config
field, a docstring, did-you-mean for a misspelt parameter.
"""

from __future__ import annotations

import pytest

import geoconv
from geoconv.grids import list_grids
from geoconv.ops import SO3_FAMILY
from geoconv.ops.registry import get_op
from geoconv.testing import assert_op_contract

CHANNELS = 4

AFFINE_OPS = frozenset(
    {
        # Linear maps plus a bias: convolutions, transposed convolutions, graph and spectral
        # convolutions, averaging and blurring, linear resampling. Not max_pool, aps_pool,
        # max_unpool (their index choice depends on x) or gated_conv (a product of two convs).
        "conv",
        "conv_transpose",
        "cheb_conv",
        "neighbour_conv",
        "spectral_conv",
        "disco_conv",
        "sphere_conv",
        "avg_pool",
        "blur_pool",
        "upsample",
        "downsample",
    }
)


def _cases() -> list[tuple[str, str]]:
    implemented = set(list_grids())
    # The SO(3) family leaves (or never enters) the grid's layout: tests/ops/test_so3.py runs the
    # contract's clauses on its own layout (test_op_contract_on_the_so3_layout).
    return [
        (name, grid)
        for name in geoconv.list_ops()
        if name not in SO3_FAMILY
        for grid in get_op(name).grids
        if grid in implemented
    ]


CASES = _cases()


def test_every_builtin_op_is_registered() -> None:
    expected = {
        "conv",
        "conv_transpose",
        "gated_conv",
        "max_pool",
        "avg_pool",
        "max_unpool",
        "upsample",
        "downsample",
        "blur_pool",
        "aps_pool",
    }
    assert expected <= set(geoconv.list_ops())


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_config_defaults_and_docs(name: str, grid: str) -> None:
    spec = get_op(name)
    assert all(not p.required for p in spec.parameters()), "every field needs a default"
    assert spec.summary, f"{name} needs a docstring"
    assert spec.make_config() == spec.config()


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_op_contract(name: str, grid: str) -> None:
    affine = name in AFFINE_OPS and get_op(name).source == "geoconv"
    # size 8 everywhere (nside, face, height) but on the icosahedral grid, whose size is a level: r 3 is 5 x 8 x 16.
    assert_op_contract(name, grid, in_channels=CHANNELS, affine=affine, size=3 if grid == "icosahedral" else 8)


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_unknown_parameter_suggests(name: str, grid: str) -> None:
    spec = get_op(name)
    first = spec.parameters()[0].name if spec.parameters() else "x"
    with pytest.raises(geoconv.errors.UnknownNameError) as info:
        spec.build(CHANNELS, grid=grid, **{first + "_typo": 1})
    assert first in info.value.suggestions
    assert first in str(info.value)
