"""Kernel widths of ``cheb_conv``'s HEALPix graph, and how isotropic its Laplacian is.

References: the weights against ``exp(-d^2 / 4t)`` with ``d`` the chord between healpy's
pixel centres and ``t`` from Defferrard et al. (2020)'s table, typed in here; the
harmonics' Rayleigh quotients against spherical harmonics from ``scipy.special``
(not healpy's synthesis); the isotropy figures against the values measured once:

=====  ==============  ==========  ====================
nside  Laplacian       ``"mean"``  ``"deepsphere2020"``
=====  ==============  ==========  ====================
16     combinatorial   0.1953      0.0692
16     normalized      0.1969      0.0566
=====  ==============  ==========  ====================

(max over ``1 <= l <= 32`` of the spread over ``m`` of the Rayleigh quotients, relative
to their mean; nside 8: 0.1894 / 0.0581 and 0.1860 / 0.0469.)
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from scipy import special

from geoconv import build_op
from geoconv.errors import ParameterError
from geoconv.ops import _healpix_graph as graph

# Defferrard et al. (2020), 8 neighbours: the chord sigma at which w = 1/2, so t = sigma^2 / (4 ln 2).
HALF_WEIGHT_CHORD = {32: 0.02500, 64: 0.01228, 128: 0.00614, 256: 0.00307, 512: 0.00154, 1024: 0.00077}


def _edges_from_healpy(nside: int, pixels: list[int]) -> list[tuple[int, int, float]]:
    """(face-order q, face-order r, squared chord) for every healpy neighbour r of the given face-order pixels."""
    out = []
    for q in pixels:
        f, rest = divmod(q, nside * nside)
        i, j = divmod(rest, nside)
        nest = int(hp.xyf2pix(nside, i, j, f, nest=True))
        for nb in hp.get_all_neighbours(nside, nest, nest=True):
            if nb < 0:
                continue
            x, y, face = hp.pix2xyf(nside, nb, nest=True)
            chord = np.subtract(hp.pix2vec(nside, nest, nest=True), hp.pix2vec(nside, int(nb), nest=True))
            out.append((q, int(face * nside * nside + x * nside + y), float(chord @ chord)))
    return out


def _weight(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, q: int, r: int) -> float:
    (index,) = np.nonzero((rows == q) & (cols == r))
    assert index.size == 1
    return float(weights[index[0]])


# --------------------------------------------------------------------------- the weight rule


@pytest.mark.parametrize("nside", [32, 64])
def test_deepsphere2020_weights_are_the_heat_kernel_of_the_tabled_width(nside: int) -> None:
    rows, cols, weights = graph.graph_edges(nside, "deepsphere2020")
    t = HALF_WEIGHT_CHORD[nside] ** 2 / (4 * np.log(2))
    for q, r, squared in _edges_from_healpy(nside, [0, 5 * nside * nside + 3, 12 * nside * nside - 1]):
        assert _weight(rows, cols, weights, q, r) == pytest.approx(np.exp(-squared / (4 * t)), rel=1e-12)
    # An edge as long as the tabled chord would weigh exactly 1/2.
    assert np.exp(-(HALF_WEIGHT_CHORD[nside] ** 2) / (4 * graph.kernel_width_t(nside, "deepsphere2020"))) == 0.5


def test_mean_rule_and_given_t() -> None:
    nside = 4
    every = _edges_from_healpy(nside, list(range(12 * nside * nside)))
    mean_squared = np.mean([s for _, _, s in every])  # each undirected edge listed from both ends
    for width, t in (("mean", mean_squared / 2), (0.03, 0.03)):
        rows, cols, weights = graph.graph_edges(nside, width)
        for q, r, squared in every[::37]:
            assert _weight(rows, cols, weights, q, r) == pytest.approx(np.exp(-squared / (4 * t)), rel=1e-12)


def test_widths_off_the_table_follow_its_power_law() -> None:
    slope, intercept = np.polyfit(np.log(list(HALF_WEIGHT_CHORD)), np.log(list(HALF_WEIGHT_CHORD.values())), 1)
    assert slope == pytest.approx(-1.0, abs=0.01)  # sigma ~ 1/nside, t ~ 1/nside^2
    for nside in (1, 8, 16, 2048):
        sigma = np.exp(intercept + slope * np.log(nside))
        assert graph.kernel_width_t(nside, "deepsphere2020") == pytest.approx(sigma**2 / (4 * np.log(2)), rel=1e-12)


# --------------------------------------------------------------------------- isotropy


def test_rayleigh_quotients_match_scipy_harmonics() -> None:
    # The harmonics from scipy at healpy's pixel centres (face order), not from alm2map.
    nside, lmax = 4, 6
    theta, phi = hp.pix2ang(nside, graph.face_nest_index(nside), nest=True)
    lap = graph.laplacian(nside, "normalized", "deepsphere2020").toarray()
    quotients = graph.harmonic_rayleigh_quotients(nside, "normalized", "deepsphere2020", lmax)
    for ell in (1, 3, 6):
        expected = []
        for m in range(ell + 1):
            y = special.sph_harm_y(ell, m, theta, phi)
            for part in (y.real, y.imag) if m else (y.real,):
                expected.append(part @ lap @ part / (part @ part))
        # alm2map's sine part is -2 Im Y_lm: the sign does not change a Rayleigh quotient.
        np.testing.assert_allclose(quotients[ell], expected, rtol=1e-10)


@pytest.mark.parametrize(
    ("kind", "mean_rule", "deepsphere2020"), [("combinatorial", 0.1953, 0.0692), ("normalized", 0.1969, 0.0566)]
)
def test_deepsphere2020_widths_are_three_times_more_isotropic(
    kind: str, mean_rule: float, deepsphere2020: float
) -> None:
    old = graph.isotropy_error(16, kind, "mean")
    new = graph.isotropy_error(16, kind, "deepsphere2020")
    assert old == pytest.approx(mean_rule, abs=0.005)
    assert new == pytest.approx(deepsphere2020, abs=0.005)
    assert new < 0.4 * old
    # The tabled width is near the figure's minimum: a smaller or larger t does worse.
    t = graph.kernel_width_t(16, "deepsphere2020")
    assert graph.isotropy_error(16, kind, 0.8 * t) > new and graph.isotropy_error(16, kind, 1.25 * t) > new


def test_exact_graph_symmetry_leaves_degree_one_nearly_flat() -> None:
    # Independent sanity check of the figure: on l = 1 the three harmonics x, y, z are
    # exchanged by the graph's quarter turn about z only for x and y, so those two agree exactly.
    quotients = graph.harmonic_rayleigh_quotients(8, "combinatorial", "deepsphere2020", 1)[1]
    assert quotients[1] == pytest.approx(quotients[2], rel=1e-12)  # cos phi and sin phi parts of Y_11


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("width", ["deepsphere", "Mean", ""])
def test_unknown_width_names_the_choices(width: str) -> None:
    with pytest.raises(ParameterError, match=r"'mean', 'deepsphere2020'"):
        build_op("cheb_conv", 1, grid="healpix", kernel_width=width)
    with pytest.raises(ParameterError, match="kernel_width"):
        graph.graph_edges(2, width)


@pytest.mark.parametrize("width", [0.0, -1e-3, float("inf")])
def test_non_positive_width_is_rejected(width: float) -> None:
    with pytest.raises(ParameterError, match="kernel_width"):
        build_op("cheb_conv", 1, grid="healpix", kernel_width=width)
    with pytest.raises(ParameterError, match="kernel_width"):
        graph.laplacian(2, "normalized", width)


def test_width_too_small_for_the_grid_and_lmax_out_of_range() -> None:
    with pytest.raises(ParameterError, match="underflow"):
        graph.graph_edges(1, 1e-5)
    with pytest.raises(ParameterError, match="lmax"):
        graph.isotropy_error(4, lmax=12)
