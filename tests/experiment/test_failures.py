"""How runs fail: a device the machine lacks, a bad config value, failed jobs in a sweep (issue 11 c, d, e).

A failure is one line on the console (what failed, the error, where the traceback is), the
traceback in the job's log file, ``metrics.json`` saying ``failed``, and a non-zero exit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from geoconv.errors import GeoconvError, ParameterError
from geoconv.experiment import runner
from geoconv.experiment.config import register_configs
from geoconv.experiment.jobs import JOBS

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


def entry_point(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "experiments/run.py", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


# -- d: devices -----------------------------------------------------------------------------------


def test_cuda_without_cuda_names_the_devices_that_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ParameterError, match=r"device='cuda(:0)?', but .*; devices here: cpu \(or device=auto\)"):
            runner.resolve_device(name)
    assert runner.resolve_device("auto") == torch.device("cpu")


def test_a_cuda_index_beyond_the_count_and_a_missing_mps_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runner.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ParameterError, match=r"device='cuda:2', but this machine has 2 CUDA device\(s\); devices here"):
        runner.resolve_device("cuda:2")
    with pytest.raises(ParameterError, match="devices here: cpu, cuda:0, cuda:1 "):
        runner.resolve_device("mps")
    with pytest.raises(ParameterError, match="device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"):
        runner.resolve_device("gpu")


@pytest.mark.parametrize("job", ["shift", "locality", "rotation", "suite", "train", "benchmark"])
def test_every_job_refuses_a_missing_device_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job: str
) -> None:
    called: list[str] = []
    monkeypatch.setitem(JOBS, job, lambda *args: called.append(job) or {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        grid = "healpix" if job == "rotation" else "planar"
        cfg = compose(config_name="config", overrides=[f"job={job}", f"grid={grid}", "device=cuda"])
    with pytest.raises(GeoconvError, match="devices here: cpu"):
        runner.run(cfg, tmp_path / "run")
    assert called == []
    payload = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert payload["status"] == "failed" and "device='cuda'" in payload["error"]


# -- e: a bad value -------------------------------------------------------------------------------


def test_a_bad_value_is_one_line_naming_the_key_what_was_expected_and_what_came(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = entry_point("experiment=shift_invariance", f"hydra.run.dir={out}", "op.params.kernel_size=three")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("run failed: ParameterError: op.params.kernel_size must be of type int")
    assert "got 'three' (str)" in lines[0] and f"traceback in {out / 'run.log'}" in lines[0]
    assert "Traceback" in (out / "run.log").read_text()
    assert json.loads((out / "metrics.json").read_text())["status"] == "failed"


# -- c: failed jobs in a sweep --------------------------------------------------------------------


def test_a_sweep_with_failed_jobs_exits_1_with_one_line_per_failure(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # No machine has a hundredth GPU: every job fails at its device check, on any machine.
    result = entry_point(
        f"hydra.sweep.dir={sweep}",
        "hydra.sweeper.params.op=conv",
        "hydra.sweeper.params.grid='planar,healpix'",
        "~hydra.sweeper.params.padding_mode",
        "device=cuda:99",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    failures = [line for line in result.stderr.splitlines() if " failed: " in line]
    # Each line names the job by its number and overrides (Hydra writes the value as cuda\\:99).
    jobs = [line.split(" device=")[0] for line in failures]
    assert jobs == ["job 0 (op=conv grid=planar", "job 1 (op=conv grid=healpix"]
    for job, line in enumerate(failures):
        assert "ParameterError: device='cuda:99'" in line and "devices here: cpu" in line
        log = sweep / str(job) / "run.log"
        assert f"(traceback in {log})" in line and "Traceback" in log.read_text()
    assert "2 of 2 jobs did not finish ok: 0 (failed), 1 (failed)" in result.stderr
    assert (sweep / "report.md").exists() and "2 failed" in result.stdout
