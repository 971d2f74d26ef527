"""experiment=benchmark on tiny sizes: every row and field reported, memory and slope against closed
forms, OOM and missing baselines handled, bad sizes rejected before any timing. No speed is asserted."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import geoconv
import geoconv.experiment.jobs.benchmark as bench
import geoconv.experiment.jobs.benchmark.rows as bench_rows
import geoconv.experiment.jobs.benchmark.sweep as bench_sweep
from geoconv.errors import GeoconvError, UnknownNameError
from geoconv.experiment.config import register_configs
from geoconv.experiment.jobs.benchmark import FIELDS, Settings, cpu_peak_bytes, pixel_slope, run_sweep
from geoconv.experiment.runner import run

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = (
    "job.sizes.healpix=[2,4]",
    "job.sizes.equirect=[4,8]",
    "job.sizes.cubemap=[4,8]",
    "job.batch=1",
    "job.channels=2",
    "job.repeats=2",
    "job.warmup=1",
    "job.threads=1",
)
MEASURED = ("fwd_ms", "fwd_ms_min", "fwdbwd_ms", "fwdbwd_ms_min", "peak_bytes", "peak_mb")
RATIOS = ("fwd_ratio", "fwdbwd_ratio", "mem_ratio")


def _compose(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=benchmark", *overrides])


def _job(**changes: Any) -> dict[str, Any]:
    """The default job config with tiny sizes, as a plain dict."""
    job = OmegaConf.to_container(OmegaConf.load(CONF / "job" / "benchmark.yaml"))
    job.update(
        sizes={"healpix": [2, 4], "equirect": [4, 8], "cubemap": [4, 8]},
        batch=1,
        channels=2,
        repeats=1,
        warmup=0,
        threads=1,
    )
    job.update(changes)
    return job


def _sweep(**changes: Any) -> list[bench.Row]:
    settings = Settings.from_job(_job(**changes))
    return run_sweep(settings, torch.device("cpu"), torch.Generator().manual_seed(0))


def test_the_experiment_runs_end_to_end_and_reports_every_field(tmp_path: Path) -> None:
    targets = (
        "job.targets=[{name:loose,metric:conv/healpix/4/fwdbwd_ratio,max:1e9},"
        "{name:impossible,metric:'conv/*/slope',min:1e9},{name:absent,metric:conv/healpix/64/fwdbwd_ratio,max:1}]"
    )
    cfg = _compose(*TINY, targets)
    out = tmp_path / "run"
    run(cfg, out)
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["status"] == "ok"
    metrics = payload["metrics"]

    rows = list(csv.DictReader((out / "benchmark.csv").open()))
    assert set(FIELDS) <= set(rows[0])
    # 3 grids x 2 sizes: case, floor, copy, pad, the op baselines that apply.
    groups = {r["group"] for r in rows}
    assert groups == {
        f"{g}/{s}" for g, sizes in (("healpix", (2, 4)), ("equirect", (4, 8)), ("cubemap", (4, 8))) for s in sizes
    }
    for group in groups:
        labels = [r["label"] for r in rows if r["group"] == group]
        assert labels[:4] == ["conv", "floor", "copy", "pad"]
        assert "spectral_conv" in labels and "disco_conv" in labels
        assert ("neighbour_conv" in labels and "cheb_conv" in labels) == group.startswith("healpix")
    for row in rows:
        if row["status"] == "skipped":
            assert row["label"] == "disco_conv" and row["reason"]
            continue
        assert row["status"] == "ok", row
        for field in (*MEASURED, *RATIOS, "pixels", "shape", "size", "timer", "memory", "machine"):
            assert row[field] != "", (row["label"], row["group"], field)
        for field in (*MEASURED, *RATIOS):
            assert math.isfinite(float(row[field])) and float(row[field]) >= 0
        assert row["timer"] == "perf_counter" and row["memory"] == "profiler"
        if row["role"] == "pad":
            assert float(row["pad_over_copy"]) > 0 and float(row["pad_over_copy_fwdbwd"]) > 0
        if row["role"] == "floor":
            assert float(row["fwdbwd_ratio"]) == 1.0
        prefix = f"{row['label']}/{row['group']}"
        for field in ("fwd_ms", "fwdbwd_ms", "peak_mb", *RATIOS):
            assert metrics[f"{prefix}/{field}"] == pytest.approx(float(row[field]), rel=1e-12)
    # A spectral conv beside a HEALPix case runs on an equirect grid with about its pixels:
    # 12 * 4^2 = 192 = 2 H^2 for H = 9.8, so 10 x 20.
    spectral = next(r for r in rows if r["label"] == "spectral_conv" and r["group"] == "healpix/4")
    assert (spectral["grid"], spectral["shape"], spectral["pixels"]) == ("equirect", "1x2x10x20", "200")

    assert metrics["rows/total"] == len(rows)
    assert metrics["rows/ok"] + metrics["rows/skipped"] == len(rows)
    assert metrics["rows/oom"] == metrics["rows/failed"] == 0
    for grid in ("healpix", "equirect", "cubemap"):
        assert math.isfinite(metrics[f"conv/{grid}/slope"])
        assert math.isfinite(metrics[f"floor/{grid}/slope_fwd"])
    for nside in (2, 4):
        assert metrics[f"conv/healpix/{nside}/speedup_over_neighbour_conv"] > 0
    assert metrics["target/loose"] == 1 and metrics["target/impossible"] == 0
    assert "target/absent" not in metrics
    assert metrics["targets/evaluated"] == 2 and metrics["targets/passed"] == 1

    text = (out / "benchmark.md").read_text()
    assert "| op " in text and "fwd+bwd ms" in text and "torch " + torch.__version__ in text
    assert "not evaluated" in text and "FAIL" in text
    assert (out / "benchmark.png").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_the_default_config_has_the_issue_sizes_and_targets() -> None:
    settings = Settings.from_job(OmegaConf.to_container(_compose().job))
    assert 64 in settings.sizes["healpix"] and 128 in settings.sizes["equirect"] and 64 in settings.sizes["cubemap"]
    assert [(c.op, c.grid, c.padding_mode) for c in settings.cases] == [
        ("conv", "healpix", "healpix"),
        ("conv", "equirect", "sphere"),
        ("conv", "cubemap", "cube"),
    ]
    names = {t.name for t in settings.targets}
    assert {"healpix_fwdbwd_ratio_le_1.15", "equirect_fwdbwd_ratio_le_1.10", "slope_in_0.9_1.1"} <= names


@pytest.mark.parametrize("n", [1 << 20, 3_000_000])
def test_cpu_peak_memory_matches_a_closed_form(n: int) -> None:
    one = cpu_peak_bytes(lambda: torch.empty(n, dtype=torch.uint8))
    assert n <= one <= n + 4096

    def two_alive_then_one() -> torch.Tensor:
        a = torch.ones(n, dtype=torch.uint8)
        b = a + 1  # a and b alive: 2n
        del a
        c = b + 1  # a freed first: still 2n
        return c

    peak = cpu_peak_bytes(two_alive_then_one)
    assert 2 * n <= peak <= 2 * n + 4096


def test_cpu_peak_memory_of_a_linear_layer_backward() -> None:
    # y = x W^T: backward allocates grad_x (like x) and grad_W (like W); the output is freed after.
    x = torch.randn(512, 256, requires_grad=True)
    layer = torch.nn.Linear(256, 128, bias=False)

    def step() -> None:
        layer(x).sum().backward()

    peak = cpu_peak_bytes(step)
    output, grad_x, grad_w = 512 * 128 * 4, x.numel() * 4, layer.weight.numel() * 4
    assert output + grad_x + grad_w <= peak <= 2 * (output + grad_x + grad_w) + 4096


@pytest.mark.parametrize("a", [0.5, 1.0, 1.37, 2.0])
def test_pixel_slope_matches_a_power_law(a: float) -> None:
    pixels = [3 * 4**k for k in range(2, 7)]
    times = [0.25 * p**a for p in pixels]
    assert pixel_slope(pixels, times) == pytest.approx(a, abs=1e-12)
    with pytest.raises(GeoconvError, match="distinct"):
        pixel_slope([10, 10], [1.0, 2.0])


def test_out_of_memory_marks_the_row_and_the_sweep_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    build = bench.build_workload

    def flaky(spec, settings, device, generator):
        if spec.label == "conv" and spec.group == "healpix/2":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if spec.label == "conv" and spec.group == "cubemap/4":
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate; out of memory")
        if spec.label == "floor" and spec.group == "equirect/4":
            raise ValueError("something else broke")
        return build(spec, settings, device, generator)

    monkeypatch.setattr(bench_sweep, "build_workload", flaky)
    rows = _sweep(baselines=["floor", "copy", "pad"])
    status = {(r.spec.label, r.spec.group): (r.status, r["reason"]) for r in rows}
    assert status[("conv", "healpix/2")] == ("oom", "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert status[("conv", "cubemap/4")][0] == "oom"
    assert status[("floor", "equirect/4")] == ("failed", "ValueError: something else broke")
    later = [
        r
        for r in rows
        if (r.spec.label, r.spec.group) not in {("conv", "healpix/2"), ("conv", "cubemap/4"), ("floor", "equirect/4")}
    ]
    assert later and all(r.status == "ok" for r in later)
    # No floor at equirect/4: its rows have no ratios, others do.
    assert next(r for r in rows if r.spec.label == "conv" and r.spec.group == "equirect/4")["fwdbwd_ratio"] is None
    assert next(r for r in rows if r.spec.label == "conv" and r.spec.group == "equirect/8")["fwdbwd_ratio"] > 0
    metrics, _ = bench.sweep_metrics(rows)
    assert (metrics["rows/oom"], metrics["rows/failed"], metrics["rows/ok"]) == (2, 1, len(rows) - 3)
    assert "conv/healpix/2/fwd_ms" not in metrics and "conv/healpix/4/fwd_ms" in metrics


def test_a_baseline_that_is_not_installed_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    if "disco_conv" not in geoconv.list_ops():
        rows = _sweep(cases=[{"op": "conv", "grid": "equirect", "padding_mode": None}], baselines=["disco_conv"])
        disco = [r for r in rows if r.spec.label == "disco_conv"]
        assert len(disco) == 2
        assert all(r.status == "skipped" and r["reason"] == "torch_harmonics is not installed" for r in disco)
    # Any op baseline the installation lacks is skipped the same way.
    monkeypatch.setattr(
        bench_rows, "unavailable", lambda name: "spectralpkg is not installed" if name == "spectral_conv" else ""
    )
    rows = _sweep(cases=[{"op": "conv", "grid": "healpix", "padding_mode": None}], baselines=["floor", "spectral_conv"])
    spectral = [r for r in rows if r.spec.label == "spectral_conv"]
    assert [(r.status, r["reason"]) for r in spectral] == [("skipped", "spectralpkg is not installed")] * 2
    assert all(r.status == "ok" for r in rows if r.spec.label != "spectral_conv")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        (
            {"sizes": {"healpix": [2, 3], "equirect": [4], "cubemap": [4]}},
            r"job\.sizes\.healpix\[1\] = 3 .*power of two",
        ),
        (
            {"sizes": {"healpix": [2], "equirect": [[4, 7]], "cubemap": [4]}},
            r"job\.sizes\.equirect\[0\] = \[4, 7\].*even",
        ),
        ({"sizes": {"healpix": [2], "equirect": [0], "cubemap": [4]}}, r"job\.sizes\.equirect\[0\] = 0"),
        ({"sizes": {"healpix": [2], "equirect": [4], "cubemap": [2.5]}}, r"job\.sizes\.cubemap\[0\] = 2\.5"),
        (
            {"sizes": {"healpix": [1], "equirect": [4], "cubemap": [4]}, "kernel_size": 5},
            r"job\.sizes\.healpix\[0\] = 1.*kernel_size",
        ),
        ({"sizes": {"healpix": [2], "equirect": [4]}}, r"job\.sizes\.cubemap"),
        ({"kernel_size": 4}, r"job\.kernel_size must be odd"),
        ({"repeats": 0}, r"job\.repeats must be an integer >= 1, got 0"),
        ({"dtype": "float33"}, r"job\.dtype.*'float32'"),
        ({"passes": ["fwd", "bwd"]}, r"job\.passes.*'fwdbwd'"),
        ({"cases": [{"op": "conv", "grid": "healpix", "padding_mode": "cube"}]}, r"padding_mode for grid 'healpix'"),
        ({"cases": [{"op": "neighbour_conv", "grid": "equirect", "padding_mode": None}]}, r"does not support grid"),
    ],
)
def test_bad_settings_are_rejected_naming_the_parameter(changes: dict[str, Any], pattern: str) -> None:
    with pytest.raises(GeoconvError, match=pattern):
        Settings.from_job(_job(**changes))


@pytest.mark.parametrize(
    ("changes", "kind", "suggestion"),
    [
        ({"baselines": ["flor"]}, "baseline", "floor"),
        ({"baselines": ["neighbor_conv"]}, "baseline", "neighbour_conv"),
        ({"cases": [{"op": "convv", "grid": "healpix", "padding_mode": None}]}, "op", "conv"),
        ({"cases": [{"op": "conv", "grid": "healpics", "padding_mode": None}]}, "grid", "healpix"),
    ],
)
def test_unknown_names_are_rejected_with_suggestions(changes: dict[str, Any], kind: str, suggestion: str) -> None:
    with pytest.raises(UnknownNameError) as info:
        Settings.from_job(_job(**changes))
    assert info.value.kind.startswith(kind) and suggestion in info.value.suggestions


def test_bad_sizes_fail_the_run_before_any_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_sweep, "measure", lambda *args: pytest.fail("timed before validating"))
    cfg = _compose(*TINY, "job.sizes.healpix=[2,6]")
    with pytest.raises(GeoconvError, match=r"job\.sizes\.healpix\[1\] = 6"):
        run(cfg, tmp_path / "run")
    payload = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert payload["status"] == "failed" and "job.sizes.healpix[1]" in payload["error"]
    assert not (tmp_path / "run" / "benchmark.csv").exists()
