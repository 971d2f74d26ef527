"""The README's main job (the ablation multirun) runs end to end and reports what theory predicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from geoconv.experiment.report import read_multirun

ROOT = Path(__file__).resolve().parents[1]


def test_main_job_sweeps_op_grid_padding_and_prints_the_report(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        # Each grid at its config's size: one grid.size for all would mean a level 8 on the icosahedral grid.
        [sys.executable, "experiments/run.py", f"hydra.sweep.dir={sweep}", "job.rotations=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = read_multirun(sweep)
    assert len(report.runs) == 3 * 5 * 2
    # sphere_conv runs on equirect only, without a padding mode: the other 9 combinations are skipped, saying why.
    skipped = {(r.choices["grid"], r.choices["padding_mode"]) for r in report.runs if r.status == "skipped"}
    assert all(r.choices["op"] == "sphere_conv" for r in report.runs if not r.ok)
    assert skipped == {
        (g, p) for g in ("planar", "equirect", "cubemap", "healpix", "icosahedral") for p in ("null", "zeros")
    } - {("equirect", "null")}
    assert "21 ok, 9 skipped" in result.stdout and "| job |" in result.stdout and str(sweep) in result.stdout
    by_choice = {(r.choices["op"], r.choices["grid"], r.choices["padding_mode"]): r.metrics for r in report.runs}
    # The exact symmetries of the new grid and op: the icosahedral 72-degree turn, longitude rolls.
    assert by_choice[("conv", "icosahedral", "null")]["equivariance/max"] < 1e-5
    assert by_choice[("sphere_conv", "equirect", "null")]["equivariance/max"] < 1e-5
    for op in ("conv", "gated_conv"):
        # Own padding: exact grid symmetries (longitude rolls, HEALPix quarter turns) ...
        assert by_choice[(op, "equirect", "null")]["equivariance/max"] < 1e-5
        assert by_choice[(op, "healpix", "null")]["equivariance/max"] < 1e-5
        # ... which zero padding breaks on equirect (HEALPix faces map onto each other unturned).
        assert by_choice[(op, "equirect", "zeros")]["equivariance/max"] > 1e-3
        assert by_choice[(op, "planar", "null")]["params"] == by_choice[(op, "healpix", "null")]["params"]
    assert (sweep / "report.md").exists() and (sweep / "summary.png").exists()
