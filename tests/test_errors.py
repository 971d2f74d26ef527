"""Error helpers and value checks: messages name the culprit and suggest the closest names."""

from __future__ import annotations

import pytest
import torch

from geoconv._checks import check_choice, check_float, check_int, check_pair, check_tensor, coerce
from geoconv.errors import (
    GeoconvError,
    ParameterError,
    ShapeError,
    UnknownNameError,
    closest_names,
    unknown_name,
)


def test_hierarchy() -> None:
    for cls in (UnknownNameError, ParameterError, ShapeError):
        assert issubclass(cls, GeoconvError)
    assert issubclass(GeoconvError, ValueError)


def test_closest_names() -> None:
    choices = ["max_pool", "avg_pool", "max_unpool", "conv"]
    assert closest_names("max_pol", choices)[0] == "max_pool"
    assert "max_pool" in closest_names("pool", choices)  # substring fallback
    assert closest_names("zzzz", choices) == []


def test_unknown_name_message() -> None:
    err = unknown_name("grid", "helpix", ["planar", "healpix"])
    assert str(err) == "unknown grid: 'helpix'; did you mean 'healpix'? Valid choices: 'healpix', 'planar'"
    assert err.suggestions == ("healpix",)
    assert unknown_name("grid", "qqq", ["planar"]).suggestions == ()
    assert "did you mean" not in str(unknown_name("grid", "qqq", ["planar"]))


def test_check_int() -> None:
    assert check_int("n", 3, minimum=1) == 3
    with pytest.raises(ParameterError, match=r"n must be an integer >= 1, got 0"):
        check_int("n", 0, minimum=1)
    with pytest.raises(ParameterError, match=r"n must be an integer, got True \(bool\)"):
        check_int("n", True)
    with pytest.raises(ParameterError, match=r"n must be an integer <= 7, got 8"):
        check_int("n", 8, maximum=7)


def test_check_float_pair_choice() -> None:
    assert check_float("v", 2) == 2.0
    with pytest.raises(ParameterError, match="v must be > 0"):
        check_float("v", 0.0, positive=True)
    assert check_pair("k", (2, 3)) == (2, 3)
    with pytest.raises(ParameterError, match=r"k\[1\] must be an integer >= 1, got 0"):
        check_pair("k", (2, 0), minimum=1)
    with pytest.raises(ParameterError, match="k must be an integer or a pair"):
        check_pair("k", (1, 2, 3))
    with pytest.raises(UnknownNameError, match=r"unknown mode: 'nearst'; did you mean 'nearest'"):
        check_choice("mode", "nearst", ["nearest", "bilinear"])


def test_check_tensor() -> None:
    x = torch.zeros(2, 3, 4, 4)
    assert check_tensor(x, ndim=4) is x
    with pytest.raises(
        ShapeError, match=r"x must have shape \(B, C, H, W\) \(4 dims\), got a 3-D tensor of shape \(3, 4, 4\)"
    ):
        check_tensor(x[0], ndim=4, layout="(B, C, H, W)")
    with pytest.raises(ShapeError, match="must be a torch.Tensor"):
        check_tensor([1, 2], ndim=1)
    with pytest.raises(ShapeError, match="floating-point"):
        check_tensor(torch.zeros(2, dtype=torch.long), ndim=1, floating=True)


def test_coerce_unions_and_literals() -> None:
    assert coerce("k", 3, int | tuple[int, int]) == 3
    assert coerce("k", [1, 2], int | tuple[int, int]) == (1, 2)
    assert coerce("m", None, str | None) is None
    with pytest.raises(ParameterError, match=r"k must be of type int \| tuple\[int, int\], got \[1, 2, 3\]"):
        coerce("k", [1, 2, 3], int | tuple[int, int])
