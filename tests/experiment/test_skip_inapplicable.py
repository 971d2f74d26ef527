"""An op x grid x padding sweep meets combinations that do not exist: skipped with the reason, not failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from geoconv.errors import GeoconvError
from geoconv.experiment import runner
from geoconv.experiment.config import CONFIG_DIR, inapplicable, register_configs
from geoconv.experiment.report import read_multirun

ROOT = Path(__file__).resolve().parents[2]


def _compose(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=["experiment=rotation_equivariance", "grid.size=8", *overrides])
    return cfg


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["op=cheb_conv", "grid=equirect"], "op 'cheb_conv' runs on grid 'healpix' only, not on 'equirect'"),
        (["op=spectral_conv", "grid=equirect", "padding_mode=zeros"], "op 'spectral_conv' has no padding"),
    ],
)
def test_an_inapplicable_job_is_skipped_only_when_the_config_says_so(
    tmp_path: Path, overrides: list[str], reason: str
) -> None:
    assert reason in inapplicable(_compose(*overrides))
    out = tmp_path / "skipped"
    assert runner.run(_compose(*overrides, "skip_inapplicable=true"), out) == {}
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["status"] == "skipped" and reason in payload["error"] and payload["metrics"] == {}
    # Without the flag the same config is an error, as every invalid config is.
    with pytest.raises(GeoconvError):
        runner.run(_compose(*overrides), tmp_path / "failed")
    assert json.loads((tmp_path / "failed" / "metrics.json").read_text())["status"] == "failed"


def test_valid_combinations_are_not_inapplicable() -> None:
    assert inapplicable(_compose("op=conv", "grid=healpix", "padding_mode=zeros")) is None
    assert inapplicable(_compose("op=cheb_conv", "grid=healpix")) is None


def test_a_sweep_with_inapplicable_combinations_reports_them_and_exits_zero(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/run.py",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweeper.params.op='conv,cheb_conv'",
            "hydra.sweeper.params.grid=equirect",
            "hydra.sweeper.params.padding_mode='null,zeros'",
            "grid.size=8",
            "job.rotations=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    runs = {(r.choices["op"], r.choices["padding_mode"]): r for r in read_multirun(sweep).runs}
    assert runs[("conv", "null")].ok and runs[("conv", "zeros")].ok
    for padding in ("null", "zeros"):
        assert runs[("cheb_conv", padding)].status == "skipped"
        assert "runs on grid 'healpix' only" in runs[("cheb_conv", padding)].status_text
    assert "2 ok, 2 skipped" in result.stdout
