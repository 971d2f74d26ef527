"""The benchmark on a plugin grid, with no benchmark code change, the grid facts it relies on, and its
measuring machinery: paired timing against a fake clock, the silent profiler, conv paths, the
floor of a transposed conv, ducc0's transform against geoconv's, and ``.ci/gpu`` without CUDA.

A tiny torus (one face, circular padding both ways) is registered for the test and removed
after: the benchmark plans, builds and measures ``conv`` on it from the grid API alone. The
grid methods the benchmark uses (:meth:`Grid.shape_at`, :meth:`Grid.size_for_pixels`,
:meth:`Grid.size_label`) are checked against closed forms and brute force.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import geoconv.ops
from geoconv.errors import GeoconvError
from geoconv.experiment.jobs.benchmark import (
    Settings,
    benchmark_job,
    build_workload,
    cpu_peak_bytes,
    paired_times,
    ratio_summary,
    run_sweep,
)
from geoconv.experiment.jobs.benchmark.rows import plan, sht_size
from geoconv.grids import Grid, get_grid, register_grid, unregister_grid
from geoconv.grids.base import check_pad_widths

TORUS = "bench_torus"


class BenchTorus(Grid):
    """A flat torus written as a third party would: one face ``(B, C, n, n)``, wrapped both ways."""

    name = TORUS
    layout = "(B, C, n, n)"
    padding_modes = ("circular", "zeros")
    default_padding_mode = "circular"
    default_size = 8

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise GeoconvError(f"size for grid {TORUS!r} must be an integer >= 1, got {size!r}")
        return (batch, channels, size, size)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise GeoconvError(f"{name} on grid {TORUS!r} must be a tensor {self.layout}, got {x!r}")
        return x

    def pad(self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0) -> torch.Tensor:
        top, bottom, left, right = check_pad_widths(widths)
        torch_mode = "circular" if self.check_mode(mode) == "circular" else "constant"
        return F.pad(self.check(x), (left, right, top, bottom), mode=torch_mode)

    def to_planes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def from_planes(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        return y


@pytest.fixture
def torus() -> Iterator[str]:
    register_grid(TORUS, BenchTorus)
    try:
        yield TORUS
    finally:
        unregister_grid(TORUS)


def _job(grid: str, **changes: Any) -> dict[str, Any]:
    job = {
        "cases": [{"op": "conv", "grid": grid, "padding_mode": None}],
        "sizes": {grid: [6, [4, 8]]},
        "batch": 1,
        "channels": 2,
        "kernel_size": 3,
        "repeats": 1,
        "warmup": 0,
        "dtype": "float64",
        "passes": ["fwd", "fwdbwd"],
        "memory": True,
        "baselines": ["floor", "copy", "pad", "spectral_conv", "neighbour_conv"],
        "match_pixels": ["equirect"],
        "threads": 1,
    }
    return job | changes


def test_conv_on_a_plugin_grid_is_benchmarked_from_the_grid_api(torus: str) -> None:
    settings = Settings.from_job(_job(torus))
    assert settings.sizes[torus] == (6, (4, 8))
    rows = run_sweep(settings, torch.device("cpu"), torch.Generator().manual_seed(0))
    by_group: dict[str, list] = {}
    for row in rows:
        by_group.setdefault(row.spec.group, []).append(row)
    # neighbour_conv runs on healpix only, which match_pixels does not list: no row.
    assert {g: [r.spec.label for r in members] for g, members in by_group.items()} == {
        f"{torus}/6": ["conv", "floor", "copy", "pad", "pad:zeros", "spectral_conv"],
        f"{torus}/4x8": ["conv", "floor", "copy", "pad", "pad:zeros", "spectral_conv"],
    }
    assert all(r.status == "ok" for r in rows), [(r.spec.label, r["reason"]) for r in rows if r.status != "ok"]
    for row in rows:
        if row.spec.grid == torus:
            side = row.spec.size if isinstance(row.spec.size, int) else None
            height, width = (side, side) if side else row.spec.size
            assert (row["pixels"], row["shape"]) == (height * width, f"1x2x{height}x{width}")
            assert row["size"] == f"{height}×{width}"
            assert row["padding_mode"] in ("", "circular", "zeros")
    # spectral_conv runs on equirect (H, 2H) with the pixel count nearest the torus's:
    # 36 pixels -> 2 H^2 in {32 (H=4), 50 (H=5)} -> H = 4; 32 pixels -> H = 4 exactly.
    spectral = [r for r in rows if r.spec.label == "spectral_conv"]
    assert [(r.spec.grid, r["shape"], r["pixels"]) for r in spectral] == [("equirect", "1x2x4x8", 32)] * 2
    floors = [r for r in rows if r.spec.role == "floor"]
    assert [r["fwdbwd_ratio"] for r in floors] == [1.0, 1.0]
    assert all(r["fwdbwd_ratio"] > 0 and r["mem_ratio"] > 0 for r in rows)


def test_the_case_row_runs_the_op_with_the_plugin_grids_padding(torus: str) -> None:
    # The benchmarked forward pass is conv after the torus's circular padding, computed independently.
    settings = Settings.from_job(_job(torus, baselines=[]))
    case = next(spec for spec in plan(settings) if spec.role == "case" and spec.size == (4, 8))
    work = build_workload(case, settings, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert work.x.shape == (1, 2, 4, 8) and work.x.dtype == torch.float64
    with torch.no_grad():
        got = work.forward(work.x)
        expected = F.conv2d(F.pad(work.x, (1, 1, 1, 1), mode="circular"), work.module.weight, work.module.bias)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_the_job_writes_its_files_and_metrics_for_a_plugin_grid(torus: str, tmp_path: Path) -> None:
    job = _job(torus, targets=[{"name": "ratio", "metric": f"conv/{torus}/*/fwdbwd_ratio", "max": 1e9}])
    with contextlib.redirect_stdout(io.StringIO()):
        metrics = benchmark_job({"job": job}, torch.device("cpu"), torch.Generator().manual_seed(0), tmp_path)
    for size in ("6", "4x8"):
        assert metrics[f"conv/{torus}/{size}/pixels"] == (36 if size == "6" else 32)
        assert metrics[f"spectral_conv/{torus}/{size}/pixels"] == 32
    assert math.isfinite(metrics[f"conv/{torus}/slope"])
    assert metrics["target/ratio"] == 1 and metrics["rows/ok"] == metrics["rows/total"] == 12
    for name in ("benchmark.csv", "benchmark.md", "benchmark.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| conv " in (tmp_path / "benchmark.md").read_text()


def test_a_plugin_grid_size_it_refuses_is_rejected_naming_the_parameter(torus: str) -> None:
    with pytest.raises(GeoconvError, match=rf"job\.sizes\.{torus}\[1\] = 0 does not fit grid '{torus}'"):
        Settings.from_job(_job(torus, sizes={torus: [4, 0]}))


def test_match_pixels_names_registered_grids() -> None:
    with pytest.raises(GeoconvError, match=r"job\.match_pixels must name the grids"):
        Settings.from_job(_job("planar", match_pixels=True))
    with pytest.raises(GeoconvError) as info:
        Settings.from_job(_job("planar", match_pixels=["equirec"]))
    assert "equirect" in info.value.suggestions
    assert Settings.from_job(_job("planar", match_pixels=False)).match_pixels == ()
    # Without match_pixels an op baseline that does not run on the case's grid has no row.
    labels = [s.label for s in plan(Settings.from_job(_job("planar", match_pixels=[])))]
    assert "spectral_conv" not in labels and labels[:4] == ["conv", "floor", "copy", "pad"]


# -- the grid facts the benchmark uses -------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "size", "shape"),
    [
        ("planar", 5, (2, 3, 5, 5)),
        ("planar", [5, 7], (2, 3, 5, 7)),
        ("equirect", 4, (2, 3, 4, 8)),
        ("equirect", (4, 6), (2, 3, 4, 6)),
        ("cubemap", [3, 3], (2, 3, 6, 3, 3)),
        ("healpix", 4, (2, 3, 12, 4, 4)),
    ],
)
def test_shape_at_takes_a_resolution_or_faces(grid: str, size: Any, shape: tuple[int, ...]) -> None:
    assert get_grid(grid).shape_at(2, 3, size) == shape


@pytest.mark.parametrize(
    ("grid", "size", "pattern"),
    [
        ("equirect", [4, 7], "even width"),
        ("cubemap", [3, 4], "square faces"),
        ("healpix", [3, 3], "power of two"),
        ("planar", [4, 0], r"size\[1\] \(W\)"),
        ("planar", [4, 4, 4], r"a resolution or a pair \[H, W\]"),
    ],
)
def test_shape_at_refuses_faces_the_grid_does_not_accept(grid: str, size: Any, pattern: str) -> None:
    with pytest.raises(GeoconvError, match=pattern):
        get_grid(grid).shape_at(1, 1, size)


@pytest.mark.parametrize("grid", ["planar", "equirect", "cubemap", "healpix"])
@pytest.mark.parametrize("pixels", [1, 7, 48, 100, 192, 1000, 12 * 64**2 + 5])
def test_size_for_pixels_is_the_nearest_pixel_count(grid: str, pixels: int) -> None:
    # Brute force over closed-form pixel counts (independent of the grid code).
    count = {"planar": lambda n: n * n, "equirect": lambda n: 2 * n * n, "cubemap": lambda n: 6 * n * n}.get(
        grid, lambda n: 12 * n * n
    )
    candidates = [n for n in range(1, 400) if grid != "healpix" or n & (n - 1) == 0]
    best = min(candidates, key=lambda n: (abs(count(n) - pixels), n))
    assert get_grid(grid).size_for_pixels(pixels) == best


def test_size_labels_are_one_signals_dims_or_the_grids_own_name_for_a_resolution() -> None:
    labels = [
        get_grid(g).size_label(s) for g, s in [("planar", 6), ("equirect", (4, 6)), ("healpix", 2), ("cubemap", 4)]
    ]
    assert labels == ["6×6", "4×6", "nside 2", "face 4"]


# -- paired timing, on a fake clock ---------------------------------------------------------


def test_paired_times_interleave_alternate_and_give_numpys_ratios() -> None:
    now = [0.0]
    order: list[str] = []
    durations = {"A": [9.0, 9.0, 0.004, 0.002, 0.003, 0.010, 0.006], "B": [9.0, 9.0, 0.002, 0.002, 0.001, 0.004, 0.005]}

    def timed(name: str):
        steps = iter(durations[name])

        def call() -> None:
            order.append(name)
            now[0] += next(steps)

        return call

    a, b = paired_times(timed("A"), timed("B"), repeats=5, warmup=2, device=torch.device("cpu"), clock=lambda: now[0])
    # Warm-up A, B twice; then the pairs, the order alternating.
    assert "".join(order) == "ABAB" + "AB" + "BA" + "AB" + "BA" + "AB"
    np.testing.assert_allclose(a, [4.0, 2.0, 3.0, 10.0, 6.0], rtol=1e-9)  # milliseconds, warm-ups left out
    np.testing.assert_allclose(b, [2.0, 2.0, 1.0, 4.0, 5.0], rtol=1e-9)
    ratios = np.asarray(a) / np.asarray(b)
    summary = ratio_summary(a, b)
    assert summary["pairs"] == 5
    assert summary["median"] == pytest.approx(np.median(ratios), rel=1e-12)
    assert summary["q25"] == pytest.approx(np.percentile(ratios, 25), rel=1e-12)
    assert summary["q75"] == pytest.approx(np.percentile(ratios, 75), rel=1e-12)
    # Pairs whose partner time is 0 are left out; none left gives NaN.
    assert ratio_summary([1.0, 2.0], [0.0, 1.0]) == {"median": 2.0, "q25": 2.0, "q75": 2.0, "pairs": 1}
    assert math.isnan(ratio_summary([1.0], [0.0])["median"])
    with pytest.raises(GeoconvError, match="one partner time per time"):
        ratio_summary([1.0, 2.0], [1.0])


def test_the_profiler_memory_measure_prints_nothing_but_what_the_code_prints(capfd: pytest.CaptureFixture) -> None:
    capfd.readouterr()
    for _ in range(3):
        assert cpu_peak_bytes(lambda: torch.empty(4096, dtype=torch.uint8)) >= 4096
    assert capfd.readouterr() == ("", "")

    def noisy() -> None:
        os.write(2, b"the measured code's own line\n")
        torch.empty(16)

    cpu_peak_bytes(noisy)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "the measured code's own line\n")


# -- conv paths, the transposed floor -------------------------------------------------------


def _plain_job(**changes: Any) -> dict[str, Any]:
    return _job("healpix", sizes={"healpix": [2]}, baselines=["floor"], repeats=2, passes=["fwdbwd"]) | changes


def test_a_conv_path_runs_every_pass_under_conv_path(monkeypatch: pytest.MonkeyPatch) -> None:
    entered: list[str] = []

    @contextlib.contextmanager
    def conv_path(name: str) -> Iterator[None]:
        entered.append(name)
        yield

    monkeypatch.setattr(geoconv.ops, "conv_path", conv_path, raising=False)
    cases = [{"op": "conv", "grid": "healpix", "padding_mode": None, "path": p} for p in ("halo", "padded")]
    rows = run_sweep(Settings.from_job(_plain_job(cases=cases)), torch.device("cpu"), torch.Generator().manual_seed(0))
    assert [(r.spec.label, r.status, r["path"]) for r in rows] == [
        ("conv[halo]", "ok", "halo"),
        ("conv[padded]", "ok", "padded"),
        ("floor", "ok", ""),
    ]
    # Each case: a first forward (lazy parameters), 2 timed runs (no warm-up), one traced run.
    assert entered == ["halo"] * 4 + ["padded"] * 4


def test_a_missing_conv_path_skips_the_row_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(geoconv.ops, "conv_path", raising=False)
    cases = [
        {"op": "conv", "grid": "healpix", "padding_mode": None, "path": "halo"},
        {"op": "conv", "grid": "healpix", "padding_mode": None, "path": "auto"},
    ]
    rows = run_sweep(Settings.from_job(_plain_job(cases=cases)), torch.device("cpu"), torch.Generator().manual_seed(0))
    assert [(r.spec.label, r.status) for r in rows] == [("conv[halo]", "skipped"), ("conv", "ok"), ("floor", "ok")]
    reason = "geoconv.ops.conv_path does not exist in this version, so the 'halo' path cannot be chosen"
    assert rows[0]["reason"] == reason


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ({"op": "conv", "grid": "healpix", "padding_mode": None, "path": "hallo"}, r"job\.cases\[0\]\.path"),
        ({"op": "spectral_conv", "grid": "equirect", "padding_mode": None, "path": "halo"}, r"has no padding"),
        ({"op": "conv", "grid": "healpix", "padding_mode": None, "sizes": [2, 3]}, r"job\.cases\[0\]\.sizes\[1\] = 3"),
        ({"op": "conv", "grid": "healpix", "padding_mode": None, "sizes": []}, r"job\.cases\[0\]\.sizes must list"),
    ],
)
def test_bad_case_paths_and_sizes_are_rejected(case: dict[str, Any], pattern: str) -> None:
    with pytest.raises(GeoconvError, match=pattern):
        Settings.from_job(_plain_job(cases=[case], sizes={"healpix": [2], "equirect": [4]}))


@pytest.mark.parametrize("grid", ["healpix", "equirect", "cubemap"])
def test_the_transposed_floor_makes_the_faces_the_case_makes(grid: str) -> None:
    case = {"op": "conv_transpose", "grid": grid, "padding_mode": None, "sizes": [4], "params": {"stride": 2}}
    settings = Settings.from_job(_plain_job(cases=[case], sizes={grid: [2]}, dtype="float32"))
    specs = plan(settings)
    assert [(s.label, s.size, s.partner) for s in specs] == [
        ("conv_transpose", 4, "floor_transpose"),
        ("floor", 4, ""),
        ("floor_transpose", 4, ""),
    ]
    works = [build_workload(s, settings, torch.device("cpu"), torch.Generator().manual_seed(0)) for s in specs]
    with torch.no_grad():
        faces = get_grid(grid).to_planes(works[0].forward(works[0].x))  # each face twice as large
        assert works[2].forward(works[2].x).shape == faces.shape
        assert works[1].forward(works[1].x).shape == works[1].x.shape == get_grid(grid).to_planes(works[0].x).shape


# -- the spectral transform beside ducc0 ----------------------------------------------------


def test_ducc0_and_geoconv_compute_the_same_coefficients_at_l_128() -> None:
    pytest.importorskip("ducc0")
    from geoconv.experiment.jobs.benchmark.sht import ducc0_analysis, ducc0_round_trip, geoconv_round_trip
    from geoconv.ops.spectral import sh_analysis, sh_synthesis

    lmax = 128
    height, width = sht_size(lmax)
    generator = torch.Generator().manual_seed(0)
    coeffs = torch.randn(2, lmax + 1, lmax + 1, 2, generator=generator, dtype=torch.float64)
    ell, m = torch.meshgrid(torch.arange(lmax + 1), torch.arange(lmax + 1), indexing="ij")
    coeffs[..., 0] *= m <= ell
    coeffs[..., 1] *= (m <= ell) & (m > 0)  # a band-limited real field: no sine part at m = 0
    x = sh_synthesis(coeffs, height, width)
    ours, theirs = sh_analysis(x, lmax), ducc0_analysis(x, lmax)
    assert np.abs(ours.numpy() - coeffs.numpy()).max() < 1e-10
    assert np.abs(theirs - coeffs.numpy()).max() < 1e-10
    # The timed round trips agree too (float64, same grid), and keep the input's shape and dtype.
    torch.testing.assert_close(ducc0_round_trip(x, lmax, nthreads=1), geoconv_round_trip(x, lmax), rtol=0, atol=1e-10)
    torch.testing.assert_close(geoconv_round_trip(x, lmax), x, rtol=0, atol=1e-10)


def test_the_sht_rows_pair_geoconv_with_ducc0_or_skip_ducc0_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import geoconv.experiment.jobs.benchmark.rows as bench_rows

    settings = Settings.from_job(_plain_job(sht_lmax=3, passes=["fwd", "fwdbwd"]))
    try:
        import ducc0  # noqa: F401
    except ImportError:
        pass
    else:
        rows = run_sweep(settings, torch.device("cpu"), torch.Generator().manual_seed(0))
        sht, ref = rows[-2:]
        assert (sht.spec.label, sht.status, ref.spec.label, ref.status) == ("sht", "ok", "ducc0_sht", "ok")
        assert sht["shape"] == "1x2x8x16" and sht["pairs"] == 2 and ref["pairs"] == 2
        assert sht["fwd_ratio_q25"] <= sht["fwd_ratio"] <= sht["fwd_ratio_q75"] and sht["fwdbwd_ms"] is None
    monkeypatch.setattr(bench_rows, "ducc0_unavailable", lambda: "ducc0 is not installed (pip install ducc0)")
    rows = run_sweep(settings, torch.device("cpu"), torch.Generator().manual_seed(0))
    sht, ref = rows[-2:]
    assert (ref.status, ref["reason"]) == ("skipped", "ducc0 is not installed (pip install ducc0)")
    assert sht.status == "ok" and sht["fwd_ratio"] is None and sht["fwd_ms"] > 0


# -- .ci/gpu --------------------------------------------------------------------------------


def test_the_gpu_script_without_cuda_says_so_and_exits_0() -> None:
    script = Path(__file__).resolve().parents[1] / ".ci" / "gpu"
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device" in done.stdout and "nothing was run" in done.stdout
