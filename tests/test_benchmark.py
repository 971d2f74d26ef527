"""experiment=benchmark on tiny sizes: every row and field reported, memory and slope against closed
forms, OOM and missing baselines handled, bad sizes rejected before any timing. No speed is asserted.
Pairing, the quiet profiler, conv paths, ducc0 and the GPU script: tests/test_benchmark_grids.py."""

from __future__ import annotations

import csv
import json
import math
import os
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
# The default cases, with the conv_transpose cases at a tiny size of their own.
CASES = (
    "job.cases=[{op:conv,grid:healpix,padding_mode:healpix},{op:conv,grid:healpix,padding_mode:healpix,path:halo},"
    "{op:conv_transpose,grid:healpix,padding_mode:healpix,sizes:[4]},{op:conv,grid:equirect,padding_mode:sphere},"
    "{op:conv,grid:cubemap,padding_mode:cube}]"
)
TINY = (
    CASES,
    "job.sht_lmax=3",
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
RATIOS = (*(f"{p}_ratio{q}" for p in ("fwd", "fwdbwd") for q in ("", "_q25", "_q75")), "mem_ratio")


def _compose(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=benchmark", *overrides])


def _job(**changes: Any) -> dict[str, Any]:
    """The default job config with tiny sizes, as a plain dict."""
    job = OmegaConf.to_container(OmegaConf.load(CONF / "job" / "benchmark.yaml"))
    job.update(
        # The plain cases: those at their own sizes are not tiny, and a named conv path may be absent here.
        cases=[c for c in job["cases"] if "sizes" not in c and "path" not in c],
        sht_lmax=None,
        sizes={"healpix": [2, 4], "equirect": [4, 8], "cubemap": [4, 8], "icosahedral": [1, 2]},
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


def test_the_experiment_runs_end_to_end_and_reports_every_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever this checkout has: no conv_path, and no ducc0 (each row says why).
    monkeypatch.delattr(geoconv.ops, "conv_path", raising=False)
    monkeypatch.setattr(bench_rows, "ducc0_unavailable", lambda: "ducc0 is not installed (pip install ducc0)")
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
    # 3 grids x 2 sizes: cases, floor(s), copy, pad, the op baselines that apply; then the transform.
    groups = list(dict.fromkeys(r["group"] for r in rows))
    assert groups == [
        *(f"{g}/{s}" for g, sizes in (("healpix", (2, 4)), ("equirect", (4, 8)), ("cubemap", (4, 8))) for s in sizes),
        "equirect/8x16",
    ]
    for group in groups[:-1]:
        labels = [r["label"] for r in rows if r["group"] == group]
        first = {
            "healpix/2": ["conv", "conv[halo]", "floor", "copy", "pad"],
            "healpix/4": ["conv", "conv[halo]", "conv_transpose", "floor", "floor_transpose", "copy", "pad"],
        }.get(group, ["conv", "floor", "copy", "pad"])
        assert labels[: len(first)] == first
        assert "pad" in labels and "spectral_conv" in labels and "disco_conv" in labels
        assert ("neighbour_conv" in labels and "cheb_conv" in labels) == group.startswith("healpix")
    assert [r["label"] for r in rows if r["group"] == "equirect/8x16"] == ["sht", "ducc0_sht"]
    skipped = {(r["label"], r["reason"]) for r in rows if r["status"] == "skipped"}
    assert skipped <= {
        ("disco_conv", "torch_harmonics is not installed"),
        ("conv[halo]", "geoconv.ops.conv_path does not exist in this version, so the 'halo' path cannot be chosen"),
        ("ducc0_sht", "ducc0 is not installed (pip install ducc0)"),
    }
    assert {"conv[halo]", "ducc0_sht"} <= {label for label, _ in skipped}
    by_key = {(r["label"], r["group"]): r for r in rows}
    for row in rows:
        if row["status"] == "skipped":
            continue
        assert row["status"] == "ok", row
        assert row["timer"] == "perf_counter" and row["machine"]
        if row["role"] == "sht":  # forward only, no memory, no partner (ducc0 is absent): timed alone
            assert row["fwdbwd_ms"] == row["peak_mb"] == row["fwd_ratio"] == row["pairs"] == ""
            assert float(row["fwd_ms"]) > 0 and row["partner"] == "ducc0_sht"
            continue
        for field in (*MEASURED, *RATIOS, "pixels", "pairs", "shape", "size", "memory"):
            assert row[field] != "", (row["label"], row["group"], field)
        for field in (*MEASURED, *RATIOS):
            assert math.isfinite(float(row[field])) and float(row[field]) >= 0
        assert float(row["fwd_ratio_q25"]) <= float(row["fwd_ratio"]) <= float(row["fwd_ratio_q75"])
        assert row["memory"] == "profiler"
        if row["role"] == "floor":
            assert row["partner"] == ""
        else:
            assert int(row["pairs"]) == 2 and row["partner"] in ("floor", "floor_transpose")
            partner = by_key[(row["partner"], row["group"])]
            assert float(row["mem_ratio"]) == pytest.approx(int(row["peak_bytes"]) / int(partner["peak_bytes"]))
        if row["role"] == "pad":
            for field in ("pad_over_copy", "pad_over_copy_fwdbwd"):
                assert 0 < float(row[f"{field}_q25"]) <= float(row[field]) <= float(row[f"{field}_q75"])
        prefix = f"{row['label']}/{row['group']}"
        for field in ("fwd_ms", "fwdbwd_ms", "peak_mb", "pairs", *RATIOS):
            assert metrics[f"{prefix}/{field}"] == pytest.approx(float(row[field]), rel=1e-12)
    # An anchor's ratios are 1 and its times are pooled over every pair it was in.
    for group in groups[:-1]:
        floor = by_key[("floor", group)]
        assert float(floor["fwdbwd_ratio"]) == float(floor["fwdbwd_ratio_q75"]) == 1.0
        paired = [r for r in rows if r["group"] == group and r["partner"] == "floor" and r["status"] == "ok"]
        assert int(floor["pairs"]) == 2 * len(paired)
    assert by_key[("conv_transpose", "healpix/4")]["partner"] == "floor_transpose"
    assert int(by_key[("floor_transpose", "healpix/4")]["pairs"]) == 2
    # A spectral conv beside a HEALPix case runs on an equirect grid with about its pixels:
    # 12 * 4^2 = 192 = 2 H^2 for H = 9.8, so 10 x 20.
    spectral = by_key[("spectral_conv", "healpix/4")]
    assert (spectral["grid"], spectral["shape"], spectral["pixels"]) == ("equirect", "1x2x10x20", "200")

    assert metrics["rows/total"] == len(rows)
    assert metrics["rows/ok"] + metrics["rows/skipped"] == len(rows)
    assert metrics["rows/oom"] == metrics["rows/failed"] == 0
    for grid in ("healpix", "equirect", "cubemap"):
        assert math.isfinite(metrics[f"conv/{grid}/slope"])
        assert math.isfinite(metrics[f"floor/{grid}/slope_fwd"])
    for nside in (2, 4):
        speedup = metrics[f"conv/healpix/{nside}/speedup_over_neighbour_conv"]
        ratios = (metrics[f"{label}/healpix/{nside}/fwdbwd_ratio"] for label in ("neighbour_conv", "conv"))
        assert speedup == pytest.approx(next(ratios) / next(ratios))
    assert not any("spectral_over_ducc0" in name for name in metrics)  # ducc0 is absent
    assert metrics["target/loose"] == 1 and metrics["target/impossible"] == 0
    assert "target/absent" not in metrics
    assert metrics["targets/evaluated"] == 2 and metrics["targets/passed"] == 1

    text = (out / "benchmark.md").read_text()
    assert "| op " in text and "fwd+bwd ms" in text and "torch " + torch.__version__ in text
    assert "paired ratio [q25–q75]" in text and "| pairs " in text and "mem ratio" in text
    assert ("load average (1 min) before / after" in text) == hasattr(os, "getloadavg")
    assert "- allocator: " in text
    assert "ducc0 is not installed" in text and "conv_path does not exist" in text
    assert "not evaluated" in text and "FAIL" in text
    assert (out / "benchmark.png").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_the_default_config_has_the_issue_sizes_and_targets() -> None:
    settings = Settings.from_job(OmegaConf.to_container(_compose().job))
    assert 64 in settings.sizes["healpix"] and 128 in settings.sizes["equirect"] and 64 in settings.sizes["cubemap"]
    modes = {"healpix": "healpix", "equirect": "sphere", "cubemap": "cube"}
    transposed = {"healpix": (16, 32), "equirect": (32, 64), "cubemap": (16, 32)}
    issue_14 = [
        row
        for grid, mode in modes.items()
        for row in (
            ("conv", grid, mode, None, None),
            ("conv[padded]", grid, mode, "padded", None),
            ("conv[halo]", grid, mode, "halo", None),
            ("conv_transpose", grid, mode, None, transposed[grid]),
        )
    ]
    issue_15 = [("sphere_conv", "equirect", None, None, None), ("conv", "icosahedral", "ico", None, None)]
    cases = [(c.label, c.grid, c.padding_mode, c.path, c.sizes) for c in settings.cases]
    assert sorted(cases, key=str) == sorted(issue_14 + issue_15, key=str)
    assert settings.sht_lmax == 128
    bounds = {t.name: (t.patterns, t.minimum, t.maximum) for t in settings.targets}
    assert bounds["healpix_fwdbwd_ratio_le_1.10"] == (("conv/healpix/64/fwdbwd_ratio",), None, 1.10)
    assert bounds["cubemap_fwdbwd_ratio_le_1.10"] == (("conv/cubemap/64/fwdbwd_ratio",), None, 1.10)
    assert bounds["equirect_fwdbwd_ratio_le_1.05"] == (("conv/equirect/128/fwdbwd_ratio",), None, 1.05)
    assert bounds["mem_ratio_le_1.15"][2] == 1.15 and bounds["conv_transpose_fwdbwd_ratio_le_1.3"][2] == 1.3
    assert bounds["pad_over_copy_le_1.5"][2] == 1.5 and bounds["spectral_over_ducc0_le_1.5"][2] == 1.5
    assert bounds["slope_in_0.9_1.1"][1:] == (0.9, 1.1)
    # Every conv_transpose target names a size its case runs at.
    for pattern in bounds["conv_transpose_fwdbwd_ratio_le_1.3"][0]:
        _, grid, size, _ = pattern.split("/")
        assert int(size) in transposed[grid]


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

    def flaky(spec, settings, device, generator, **kwargs):
        if spec.label == "conv" and spec.group == "healpix/2":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if spec.label == "conv" and spec.group == "cubemap/4":
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate; out of memory")
        if spec.label == "floor" and spec.group == "equirect/4":
            raise ValueError("something else broke")
        return build(spec, settings, device, generator, **kwargs)

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
    # No floor at equirect/4: its rows were timed alone and have no ratios, others do.
    alone = next(r for r in rows if r.spec.label == "conv" and r.spec.group == "equirect/4")
    assert alone["fwdbwd_ratio"] is None and alone["pairs"] is None and alone["fwdbwd_ms"] > 0
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
        ({"allocator": "jemalloc"}, r"job\.allocator.*'reuse'"),
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
