"""Each experiment end to end on tiny sizes, checking the values it reports, not only the files."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from geoconv.errors import GeoconvError, ParameterError
from geoconv.experiment.config import register_configs
from geoconv.experiment.report import read_multirun
from geoconv.experiment.runner import run

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def _run(tmp_path: Path, *overrides: str) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    out = tmp_path / "run"
    run(cfg, out)
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["status"] == "ok"
    assert payload["config"]["op"]["name"] == cfg.op.name
    return payload["metrics"] | {"_dir": out}


def test_circular_stack_is_exactly_shift_equivariant(tmp_path: Path) -> None:
    metrics = _run(
        tmp_path,
        "experiment=shift_invariance",
        "padding_mode=circular",
        "grid.size=12",
        "job.absolute_position=false",
        "job.shifts=[0,1,2,3,5,7]",
    )
    for shift in (1, 2, 3, 5, 7):
        assert metrics[f"shift/circular/error@{shift}"] < 1e-5
    assert metrics["border/measured_band"] == 0
    assert (metrics["_dir"] / "shift_curves.png").stat().st_size > 0


def test_zero_padding_error_stays_in_the_predicted_border_band(tmp_path: Path) -> None:
    metrics = _run(
        tmp_path,
        "experiment=shift_invariance",
        "padding_mode=zeros",
        "grid.size=12",
        "job.shifts=[0,2]",
        "job.kinds=[circular]",
    )
    assert metrics["shift/circular/error@2"] > 1e-3
    # Three "same" 3x3 layers: the band is 3 pixels wide, predicted and measured.
    assert metrics["border/predicted_band"] == 3
    assert 0 < metrics["border/measured_band"] <= metrics["border/predicted_band"]
    # Zero padding leaks absolute position (Kayhan & van Gemert 2020).
    assert metrics["absolute_position/accuracy"] > 0.9


def test_circular_padding_hides_absolute_position(tmp_path: Path) -> None:
    metrics = _run(
        tmp_path,
        "experiment=shift_invariance",
        "padding_mode=circular",
        "grid.size=8",
        "job.shifts=[1]",
        "job.kinds=[circular]",
    )
    assert metrics["absolute_position/accuracy"] == pytest.approx(0.5, abs=0.05)


def test_aps_network_is_perfectly_consistent(tmp_path: Path) -> None:
    metrics = _run(
        tmp_path,
        "experiment=shift_invariance",
        "op=aps_pool",
        "model.depth=2",
        "grid.size=16",
        "job.shifts=[0,2,4]",
        "job.kinds=[circular]",
        "job.absolute_position=false",
    )
    assert metrics["consistency"] == 1.0


def test_locality_matches_theory(tmp_path: Path) -> None:
    metrics = _run(
        tmp_path,
        "experiment=locality",
        "grid.size=16",
        "job.depths=[1,2,4]",
        "job.kernel_sizes=[3]",
        "job.dilations=[1]",
        "job.strides=[1]",
        "job.inits=1",
        "job.inputs=2",
    )
    # ERF of n linear 3x3 uniform layers: sigma^2 = n (k^2 - 1) / 12 per axis.
    for depth in (1, 2, 4):
        expected = math.sqrt(depth * (3**2 - 1) / 12)
        assert metrics[f"erf/std@depth={depth}"] == pytest.approx(expected, rel=0.1)
    assert metrics["erf/slope_depth"] == pytest.approx(0.5, abs=0.05)
    assert metrics["rf/theoretical"] == metrics["rf/gradient_support"] == 7
    assert (metrics["_dir"] / "erf_map.png").exists() and (metrics["_dir"] / "erf_vs_geometry.png").exists()


def test_equirect_sphere_padding_is_roll_equivariant_zeros_is_not(tmp_path: Path) -> None:
    common = (
        "experiment=rotation_equivariance",
        "grid.size=8",
        "job.rotations=1",
        "job.lmax=3",
        "job.erf_inputs=1",
    )
    sphere = _run(tmp_path / "sphere", *common)
    zeros = _run(tmp_path / "zeros", *common, "padding_mode=zeros")
    assert sphere["symmetry/max"] < 1e-5
    assert zeros["symmetry/max"] > 1e-3
    for run_metrics in (sphere, zeros):
        assert run_metrics["rotation/floor"] > 0
        assert run_metrics["rotation/error"] >= run_metrics["rotation/floor"]
    assert (sphere["_dir"] / "erf_pole.png").exists()


def test_healpix_rotation_experiment(tmp_path: Path) -> None:
    metrics = _run(
        tmp_path,
        "experiment=rotation_equivariance",
        "grid=healpix",
        "grid.size=4",
        "job.rotations=1",
        "job.lmax=3",
        "job.erf_inputs=1",
    )
    assert metrics["symmetry/max"] < 1e-5


def test_an_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    args = (
        "experiment=locality",
        "grid.size=8",
        "job.depths=[1]",
        "job.kernel_sizes=[3]",
        "job.dilations=[1]",
        "job.strides=[1]",
        "job.inits=1",
        "job.inputs=1",
    )
    _run(tmp_path, *args)
    before = (tmp_path / "run" / "metrics.json").read_text()
    with pytest.raises(GeoconvError, match="already holds a run's results"):
        _run(tmp_path, *args)
    assert (tmp_path / "run" / "metrics.json").read_text() == before
    _run(tmp_path, *args, "overwrite=true")


def test_a_job_on_the_wrong_grid_fails_before_work(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="measures flat grids, got grid='healpix'"):
        _run(tmp_path, "experiment=shift_invariance", "grid=healpix")
    payload = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert payload["status"] == "failed" and "flat grids" in payload["error"]


def test_ablation_multirun_reports_every_job_and_marks_failures(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/run.py",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweeper.params.op='conv,cheb_conv'",
            "hydra.sweeper.params.grid='planar,healpix'",
            "~hydra.sweeper.params.padding_mode",
            "skip_inapplicable=false",  # the ablation skips such jobs; here cheb_conv on planar is a failure
            "grid.size=8",
            "job.rotations=1",
            "job.lmax=3",
            "job.erf_inputs=1",
            "job.shifts=[1]",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # cheb_conv on planar fails at validation; the other three jobs finish and are reported.
    report = read_multirun(sweep)
    status = {(run.choices.get("op"), run.choices.get("grid")): run.status for run in report.runs}
    assert status[("conv", "planar")] == status[("conv", "healpix")] == status[("cheb_conv", "healpix")] == "ok"
    failed = [run for run in report.runs if not run.ok]
    assert len(failed) == 1 and "does not support grid 'planar'" in failed[0].error
    # The failure cost the others nothing: every finished job's metrics are in the report, whole.
    assert len(report.runs) == 4
    assert all("equivariance/max" in run.metrics and "params" in run.metrics for run in report.runs if run.ok)
    with (sweep / "report.csv").open(newline="") as handle:
        assert len(list(csv.reader(handle))) == 1 + 4
    assert (sweep / "report.md").exists() and (sweep / "report.csv").exists() and (sweep / "summary.png").exists()
    assert "failed" in (sweep / "report.md").read_text()
    # Issue 11 (c): a sweep with a failed job exits 1 (it exited 0), with one line for the failure.
    assert result.returncode == 1, result.stderr
    assert "3 ok, 1 failed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "1 of 4 jobs did not finish ok" in result.stderr


def test_a_blur_pool_stack_is_measured_at_multiples_of_its_stride(tmp_path: Path) -> None:
    # Issue 11 (f): three stride-2 blur pools (total stride 8) reported equivariance/max = nan.
    common = ("op=blur_pool", "grid.size=16", "job.shifts=[1,2,4]")
    circular = _run(tmp_path / "circular", *common, "padding_mode=circular")
    zeros = _run(tmp_path / "zeros", *common, "padding_mode=zeros")
    # Circular padding commutes exactly with rolls by multiples of the stride 2^3 = 8: an exact symmetry.
    for shift in (8, 16, 32):
        assert circular[f"shift/circular/error@{shift}"] < 1e-6
    assert circular["equivariance/max"] == circular["shift/circular/error_max"] < 1e-6
    # Zero padding breaks it at the border; the measurement is a number either way.
    assert math.isfinite(zeros["equivariance/max"]) and zeros["equivariance/max"] > 1e-3
    # A shift of 1, 2 or 4 input pixels has no output counterpart: only its pooled error is reported.
    for shift in (1, 2, 4):
        assert f"shift/circular/error@{shift}" not in circular
        assert math.isfinite(circular[f"shift/circular/pooled_error@{shift}"])


def test_a_sweep_reports_configured_columns_it_lacks_as_n_a(tmp_path: Path) -> None:
    # Issue 11 (b): "no report ... metrics pattern 'rotation/excess' matches no metric".
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/run.py",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweeper.params.op=blur_pool",
            "hydra.sweeper.params.grid=planar",
            "grid.size=16",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "no report" not in result.stderr and "2 ok" in result.stdout
    lines = [line for line in (sweep / "report.md").read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:2] == ["job", "padding_mode"] and header[-1] == "status"
    configured = yaml.safe_load((CONF / "experiment" / "ablation.yaml").read_text())["report_metrics"]
    assert set(header[2:-1]) == set(configured) and "rotation/excess" in configured
    for line in lines[2:]:
        cells = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        assert cells["rotation/excess"] == cells["erf/seam_offset_deg"] == "n/a"
        assert math.isfinite(float(cells["equivariance/max"]))


TINY_TRAINING = ("trainer.max_epochs=4", "trainer.batch_size=16", "trainer.progress_bar=false", "data.cache_dir=null")


@pytest.mark.parametrize(
    ("experiment", "extra"),
    [
        ("spherical_digits", ("grid.size=8", "data.limit=128", "data.test_limit=64")),
        ("spherical_digits", ("grid=healpix", "grid.size=4", "data.limit=128", "data.test_limit=64")),
        # The default classifier's group norm learns more slowly per step than batch norm did
        # (README, Training): on 6x6 cube faces 4 epochs of 128 digits are not yet enough.
        (
            "spherical_digits",
            ("grid=cubemap", "grid.size=6", "data.limit=128", "data.test_limit=64", "trainer.max_epochs=8"),
        ),
        ("translated_digits", ("grid.size=12", "data.limit=512", "data.test_limit=64")),
    ],
)
def test_training_experiments_learn(tmp_path: Path, experiment: str, extra: tuple[str, ...]) -> None:
    metrics = _run(tmp_path, f"experiment={experiment}", *TINY_TRAINING, *extra)
    assert math.isfinite(metrics["train/loss"]) and metrics["val/loss"] < metrics["val/loss_start"]
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["params"] > 0
    assert 0.0 <= metrics["test/consistency"] <= 1.0
    assert metrics["train/samples_per_s"] > 0
    assert (metrics["_dir"] / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_earth_segmentation_learns(tmp_path: Path) -> None:
    metrics = _run(
        tmp_path,
        "experiment=earth_segmentation",
        "grid.size=8",
        "trainer.max_epochs=3",
        "trainer.progress_bar=false",
        "data.cache_dir=null",
        "data.samples=2",
        "data.test_samples=1",
    )
    assert metrics["val/loss"] < metrics["val/loss_start"]
    assert 0.0 <= metrics["test/iou_r"] <= 1.0


def test_a_zero_batch_size_fails_before_training(tmp_path: Path) -> None:
    with pytest.raises(GeoconvError, match="batch_size"):
        _run(tmp_path, "experiment=spherical_digits", *TINY_TRAINING, "trainer.batch_size=0")
    assert not (tmp_path / "run" / "checkpoints").exists()
