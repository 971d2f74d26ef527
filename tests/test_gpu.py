"""Every op on CUDA gives its CPU result (run where a GPU is present; skipped elsewhere)."""

from __future__ import annotations

import copy

import pytest
import torch

import geoconv
from geoconv.grids import get_grid, list_grids
from geoconv.ops import SO3_FAMILY
from geoconv.ops.registry import get_op

pytestmark = pytest.mark.gpu

# The SO(3) family's input is the so3 layout, not a grid's: not driven by this grid loop.
CASES = [(n, g) for n in geoconv.list_ops() if n not in SO3_FAMILY for g in get_op(n).grids if g in list_grids()]


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_cuda_matches_cpu(name: str, grid: str) -> None:
    spec = get_op(name)
    torch.manual_seed(0)
    module = spec.build(4, 4 if spec.same_channels else 6, grid=grid).double()
    x = torch.randn(get_grid(grid).shape(2, 4, 16), dtype=torch.float64, requires_grad=True)
    x_cuda = x.detach().cuda().requires_grad_(True)
    module_cuda = copy.deepcopy(module).cuda()

    def run(m: torch.nn.Module, inp: torch.Tensor) -> torch.Tensor:
        out = spec.apply(m, inp)
        return out[0] if isinstance(out, tuple) else out

    y, y_cuda = run(module, x), run(module_cuda, x_cuda)
    assert y_cuda.device.type == "cuda"
    torch.testing.assert_close(y_cuda.cpu(), y, rtol=1e-9, atol=1e-9)
    y.square().sum().backward()
    y_cuda.square().sum().backward()
    torch.testing.assert_close(x_cuda.grad.cpu(), x.grad, rtol=1e-9, atol=1e-9)


def test_benchmark_job_runs_on_cuda(tmp_path) -> None:
    """The benchmark's CUDA path: event timing and the allocator's peak, every row ok (tiny sizes)."""
    import csv
    from pathlib import Path

    from omegaconf import OmegaConf

    from geoconv.experiment.jobs.benchmark import benchmark_job

    job = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/job/benchmark.yaml"))
    job.update(
        sizes={"healpix": [4, 8], "equirect": [8, 16], "cubemap": [4, 8]}, batch=2, channels=4, repeats=3, warmup=1
    )
    metrics = benchmark_job({"job": job}, torch.device("cuda"), torch.Generator().manual_seed(0), tmp_path)
    rows = list(csv.DictReader((tmp_path / "benchmark.csv").open()))
    assert rows and metrics["rows/total"] == len(rows)
    for row in rows:
        if row["label"] == "disco_conv" and "disco_conv" not in geoconv.list_ops():
            assert row["status"] == "skipped", row
            continue
        assert row["status"] == "ok", row
        assert (row["device"], row["timer"], row["memory"]) == ("cuda", "cuda_event", "cuda_allocator")
        assert float(row["fwd_ms"]) > 0 and float(row["fwdbwd_ms"]) > 0 and int(row["peak_bytes"]) > 0
    assert metrics["rows/failed"] == metrics["rows/oom"] == 0
    assert "CUDA" in (tmp_path / "benchmark.md").read_text()


@pytest.mark.parametrize("grid", ["equirect", "cubemap", "healpix"])
def test_padded_ops_do_not_synchronise(grid: str) -> None:
    # "error": any host-device synchronisation inside the forward or backward raises.
    module = geoconv.build_op("conv", 4, 4, grid=grid).cuda()
    x = torch.randn(get_grid(grid).shape(2, 4, 16), device="cuda", requires_grad=True)
    module(x)  # builds the padding plan (host work, once per shape)
    torch.cuda.set_sync_debug_mode("error")
    try:
        module(x).square().sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
