"""Fuzz config composition: random overrides, valid and invalid, composed with Hydra and validated.

Each case either fails at composition with Hydra's or OmegaConf's own error (an unknown
group option or key, a value that does not parse), or :func:`geoconv.experiment.config.validate`
returns, or it raises :class:`~geoconv.errors.GeoconvError` naming the key. Never any other
exception from ``validate``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

import geoconv
from geoconv.experiment.config import register_configs, validate
from geoconv.grids import list_grids

OK, ERROR = "ok", "GeoconvError"
CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
OPS = geoconv.list_ops()
PARAMS = sorted({p.name for name in OPS for p in geoconv.get_op(name).parameters()})
# Hydra composes far slower than an op runs: half the per-test budget.
EXAMPLES = max(20, settings.default.max_examples // 2)

VALUES = st.sampled_from(
    ["-1", "0", "1", "3", "1.5", "abc", "null", "true", "[1,2]", "[]", "'3'", "???", "{a: 1}", "2e3", "foo", "x"]
)
KEYS = [
    "grid.size",
    "grid.name",
    "seed",
    "padding_mode",
    "model.kind",
    "model.depth",
    "model.channels",
    "model.widths",
    "model.stride",
    "job.name",
    "data.batch",
    "data.channels",
    "trainer.max_epochs",
    "overwrite",
    *(f"op.params.{p}" for p in PARAMS),
]


@pytest.fixture(scope="module")
def hydra_conf():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


@st.composite
def _override(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["group", "value", "value", "value", "unknown", "add"]))
    if kind == "group":
        group = draw(st.sampled_from(["op", "grid", "experiment", "model", "job", "data", "variant"]))
        choices = {
            "op": OPS,
            "grid": list_grids(),
            "experiment": EXPERIMENTS,
            "model": ["stack", "classifier", "unet"],
            "job": ["shift", "locality", "rotation", "suite"],
            "data": ["noise", "band_limited"],
            "variant": ["conv_healpix", "cheb_healpix"],
        }[group]
        option = draw(st.sampled_from(choices)) if not _rarely(draw, 5) else draw(st.sampled_from(["nope", "Conv"]))
        return f"{group}={option}"
    if kind == "value":
        key = draw(st.sampled_from(KEYS))
        return f"{key}={draw(VALUES)}"
    if kind == "unknown":
        return f"{draw(st.sampled_from(['op.params.kernal_size', 'grid.sise', 'sed', 'model.depht']))}={draw(VALUES)}"
    key = draw(st.sampled_from(["op.params.kernal_size", "op.params.bogus", "extra", "model.depht", "grid.foo"]))
    return f"+{key}={draw(VALUES)}"


def _words(overrides: list[str]) -> list[str]:
    words = ["op", "grid", "padding_mode", "model", "config", "parameter"]
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        words += key.split(".")
    return words


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_config(fuzz, hydra_conf, data: st.DataObject) -> None:
    label = "config compose+validate"
    experiment = data.draw(st.sampled_from(EXPERIMENTS), label="experiment")
    overrides = data.draw(st.lists(_override(), min_size=1, max_size=3), label="overrides")
    try:
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}", *overrides])
    except (HydraException, OmegaConfBaseException) as err:
        # Hydra's own refusal at composition: unknown group options and keys, bad syntax.
        assert str(err)
        fuzz.record(label, "composition error")
        return
    plain = fuzz.attempt(label, _words(overrides), validate, cfg)
    if plain is ERROR:
        return
    assert isinstance(plain, dict) and plain["op"]["name"] in OPS and plain["grid"]["name"] in list_grids()
    fuzz.record(label, OK)
