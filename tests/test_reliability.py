"""Nothing lost, bounded resources, configs that cannot run code: issue 7's clauses, by fault injection.

Each test breaks one thing on purpose (a writer that dies half-way, a config naming code, a NaN
input, a job killed with SIGKILL, a pickle that would run code) and checks that the outcome is a
clear error or a clearly marked result, and that nothing else was lost. The other clauses are
proved where they live; see the report of issue 7 for the map.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import os
import pathlib
import pkgutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import geoconv
from geoconv._io import atomic_path, atomic_write
from geoconv.data.cache import CacheWarning, cache_path, load_or_build
from geoconv.data.synthetic import INPUTS
from geoconv.errors import GeoconvError
from geoconv.experiment import runner
from geoconv.experiment.config import register_configs
from geoconv.experiment.jobs import JOBS
from geoconv.experiment.report import MISSING_REASON, read_multirun, write_report
from geoconv.experiment.runner import ALLOWED_TARGETS, NonFiniteInputError, check_targets, run, write_json
from geoconv.training.engine import CheckpointError, resolve_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# The modules that write results, reports, figures and caches: all through geoconv._io.
WRITERS = [
    "geoconv/viz.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "geoconv" / "experiment").rglob("*.py")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "geoconv" / "data").glob("*.py")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "geoconv" / "training").glob("*.py")),
]


def compose_config(*overrides: str) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["grid.size=8", "device=cpu", *overrides])


def payload(out: Path) -> dict[str, Any]:
    return json.loads((out / "metrics.json").read_text())


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def fake_probes(monkeypatch: pytest.MonkeyPatch, metrics: dict[str, float]) -> None:
    """Every job answers ``metrics`` at once (the tests here are about what surrounds a job)."""
    for name in JOBS.names():
        monkeypatch.setitem(JOBS, name, lambda *args: dict(metrics))


# -- one atomic writer -----------------------------------------------------------------------


@pytest.mark.parametrize("interrupt", [OSError("disk full"), KeyboardInterrupt()])
def test_a_writer_failing_half_way_leaves_the_old_file_and_no_temporary(tmp_path: Path, interrupt) -> None:
    target = tmp_path / "metrics.json"
    target.write_text('{"old": 1}')

    def half(handle) -> None:
        handle.write(b'{"new": ')
        raise interrupt

    with pytest.raises(type(interrupt)):
        atomic_write(target, half)
    assert target.read_text() == '{"old": 1}' and listing(tmp_path) == ["metrics.json"]
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == '{"old": 1}' and listing(tmp_path) == ["metrics.json"]
    atomic_write(target, b'{"new": 2}')
    assert target.read_text() == '{"new": 2}' and listing(tmp_path) == ["metrics.json"]


def test_atomic_files_get_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.md", "x")
        with atomic_path(tmp_path / "b.png") as temporary:
            assert temporary.suffix == ".png" and temporary.name.startswith(".b.png.")
            temporary.write_bytes(b"x")
        (tmp_path / "c.txt").write_text("x")
    finally:
        os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"a.md": 0o644, "b.png": 0o644, "c.txt": 0o644}


def test_write_json_keeps_the_old_results_when_the_payload_cannot_be_written(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"status": "ok", "metrics": {"a": 1.0}})
    before = target.read_text()
    with pytest.raises(TypeError):
        write_json(target, {"status": "ok", "metrics": {"a": object()}})
    assert target.read_text() == before and listing(tmp_path) == ["metrics.json"]
    monkeypatch.setenv("RANK", "1")  # another DDP rank writes nothing
    write_json(tmp_path / "other.json", {"status": "ok"})
    assert listing(tmp_path) == ["metrics.json"]


def test_a_figure_that_fails_while_saving_leaves_the_old_png(tmp_path: Path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    from geoconv.viz import figure

    path = figure(tmp_path / "curves.png", lambda figure: figure.subplots().plot([0, 1]))
    good = path.read_bytes()
    assert good[:8] == b"\x89PNG\r\n\x1a\n"

    def dies_half_way(self, handle, **kwargs) -> None:
        handle.write(good[:100])
        raise MemoryError("killed while saving")

    monkeypatch.setattr(Figure, "savefig", dies_half_way)
    with pytest.raises(MemoryError):
        figure(path, lambda figure: figure.subplots().plot([1, 0]))
    assert path.read_bytes() == good and listing(tmp_path) == ["curves.png"]


@pytest.mark.parametrize("module", WRITERS)
def test_every_writer_goes_through_the_one_atomic_writer(module: str) -> None:
    source = (ROOT / module).read_text()
    for copy in ("os.replace(", "NamedTemporaryFile", "mkstemp", "shutil.move("):
        assert copy not in source, f"{module} renames files itself ({copy}); use geoconv._io"
    for line in source.splitlines():
        if ".savefig(" in line:  # into atomic_write's file object, never straight to a path
            assert "atomic_write(" in line and 'format="png"' in line, f"{module}: {line.strip()}"


# -- configs cannot name code -------------------------------------------------------------------


def test_the_allow_list_is_what_the_shipped_configs_use() -> None:
    register_configs()
    for experiment in sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        check_targets(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
        check_targets(cfg.hydra.callbacks, "hydra.callbacks")
    assert ALLOWED_TARGETS == ("geoconv.experiment.runner.ReportCallback",)


def test_check_targets_names_every_offender_in_dicts_and_lists() -> None:
    node = {
        "a": {"_target_": "os.system", "b": [{"_target_": "builtins.exec"}, {"_target_": ALLOWED_TARGETS[0]}]},
        "c": {"_target_": "${oc.env:EVIL}"},  # interpolations are judged as written
    }
    with pytest.raises(GeoconvError) as caught:
        check_targets(node, "cfg")
    message = str(caught.value)
    for where in ("cfg.a._target_='os.system'", "cfg.a.b[0]._target_='builtins.exec'", "cfg.c._target_="):
        assert where in message
    assert "b[1]" not in message and "Allowed _target_ values: geoconv.experiment.runner.ReportCallback" in message


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("+op.params._target_=os.system", "op.params._target_='os.system'"),
        ("trainer.optimizer={_target_:torch.optim.SGD}", "trainer.optimizer._target_='torch.optim.SGD'"),
        ("+evil=[{_target_:builtins.exec}]", "evil[0]._target_='builtins.exec'"),
    ],
)
def test_a_job_config_naming_code_fails_before_any_work(tmp_path: Path, monkeypatch, override: str, where: str) -> None:
    called: list[str] = []
    monkeypatch.setattr(runner, "validate", lambda cfg: called.append("validate"))
    out = tmp_path / "run"
    with pytest.raises(GeoconvError, match="is not allowed") as caught:
        run(compose_config(override), out)
    assert where in str(caught.value) and called == []
    assert payload(out)["status"] == "failed" and where in payload(out)["error"]
    assert listing(out) == ["metrics.json"]


def test_a_hydra_callback_not_on_the_allow_list_fails_the_job(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(GeoconvError, match=r"hydra\.callbacks\.spy\._target_='evil\.Spy' is not allowed"):
        run(compose_config(), tmp_path / "run", callbacks={"spy": {"_target_": "evil.Spy"}})
    assert payload(tmp_path / "run")["status"] == "failed"
    fake_probes(monkeypatch, {"error": 0.0})
    run(
        compose_config(),
        tmp_path / "ok",
        callbacks={"report": {"_target_": "geoconv.experiment.runner.ReportCallback"}},
    )
    assert payload(tmp_path / "ok")["status"] == "ok"


def test_the_entry_point_checks_the_callbacks_hydra_instantiated(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/run.py",
            "experiment=locality",
            f"hydra.run.dir={out}",
            # A harmless class, but not on the allow-list: Hydra builds it, the job refuses to run.
            "+hydra.callbacks.other._target_=hydra.experimental.callback.Callback",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "hydra.callbacks.other._target_='hydra.experimental.callback.Callback' is not allowed" in result.stderr
    assert payload(out)["status"] == "failed" and "hydra.callbacks.other" in payload(out)["error"]


class _Touch:
    """Pickles as a call that creates ``path``: what a malicious checkpoint or cache would carry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.path,))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker, path = tmp_path / "code-ran", tmp_path / "evil.ckpt"
    fields = {"state_dict": {}, "loops": {}, "optimizer_states": [], "epoch": 0, "global_step": 0}
    torch.save({**fields, "payload": _Touch(marker)}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        resolve_checkpoint(str(path), tmp_path)
    assert not marker.exists()


def test_a_cache_file_carrying_code_is_rebuilt_without_running_it(tmp_path: Path) -> None:
    marker, key = tmp_path / "code-ran", {"dataset": "toy", "seed": 1}
    torch.save({"header": {}, "tensors": {"x": _Touch(marker)}}, cache_path(tmp_path, key))
    with pytest.warns(CacheWarning, match="cannot be read"):
        tensors, from_cache = load_or_build(tmp_path, key, 1, lambda: {"x": torch.arange(3)})
    assert not from_cache and torch.equal(tensors["x"], torch.arange(3)) and not marker.exists()
    assert load_or_build(tmp_path, key, 1, lambda: {"x": torch.zeros(3)})[1]  # the rebuilt file serves


# -- non-finite inputs and metrics --------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_nan_or_inf_probe_input_fails_the_run_naming_it(tmp_path: Path, monkeypatch, bad: float) -> None:
    neighbour = tmp_path / "neighbour"  # a finished run beside the broken ones
    run(compose_config("job.shifts=[1]"), neighbour)
    before = {p: p.read_bytes() for p in neighbour.rglob("*") if p.is_file()}
    noise = INPUTS["noise"]

    def poisoned(data, grid, generator):
        x = noise(data, grid, generator)
        x[0, 0, 0, :3] = bad
        return x

    monkeypatch.setitem(INPUTS, "noise", poisoned)
    # the ablation's suite probe and the shift probe both read the data input
    for name, overrides in {"suite": ("job.shifts=[1]",), "shift": ("experiment=shift_invariance",)}.items():
        out = tmp_path / name
        kind = "NaN" if math.isnan(bad) else "Inf"
        with pytest.raises(NonFiniteInputError, match=rf"data.kind='noise'.* holds 3 non-finite values .*3 {kind}"):
            run(compose_config(*overrides, "data.kind=noise"), out)
        assert payload(out)["status"] == "failed" and "NonFiniteInputError" in payload(out)["error"]
        assert listing(out) == ["metrics.json"]  # nothing measured, no figure
    assert {p: p.read_bytes() for p in neighbour.rglob("*") if p.is_file()} == before


def test_non_finite_metrics_are_listed_and_noted_in_the_report(tmp_path: Path, monkeypatch) -> None:
    sweep = tmp_path / "sweep"
    for job, value in enumerate((1.0, math.nan, -math.inf)):
        fake_probes(monkeypatch, {"error": value, "params": 3})
        out = sweep / str(job)
        (out / ".hydra").mkdir(parents=True)
        (out / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        run(compose_config(f"seed={job}"), out)
    assert "non_finite" not in payload(sweep / "0")
    assert payload(sweep / "1")["status"] == "ok" and payload(sweep / "1")["non_finite"] == ["error"]
    assert payload(sweep / "2")["non_finite"] == ["error"]
    text = write_report(sweep).text
    assert "job 1: 1 non-finite metric(s) (error)" in text and "job 2: 1 non-finite metric(s) (error)" in text
    assert "job 0:" not in text


# -- multirun: a killed job -------------------------------------------------------------------

_KILLED_JOB = """
import os, signal, sys
from pathlib import Path
from omegaconf import OmegaConf
from geoconv.experiment import runner
from geoconv.experiment.jobs import JOBS

def killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would

for name in JOBS.names():
    JOBS[name] = killed
runner.run(OmegaConf.load(sys.argv[1]), Path(sys.argv[2]))
"""


def test_a_job_killed_mid_sweep_is_reported_missing_and_the_others_complete(tmp_path: Path, monkeypatch) -> None:
    sweep = tmp_path / "sweep"
    for job in range(3):
        (sweep / str(job) / ".hydra").mkdir(parents=True)
        (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
    config = tmp_path / "config.yaml"
    OmegaConf.save(compose_config("seed=1"), config)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_JOB, str(config), str(sweep / "1")], cwd=ROOT, capture_output=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    fake_probes(monkeypatch, {"error": 0.5, "params": 3})
    for job in (0, 2):
        run(compose_config(f"seed={job}"), sweep / str(job))

    written = write_report(sweep)
    runs = {run.job: run for run in written.report.runs}
    assert (runs[1].status, runs[1].error) == ("missing", MISSING_REASON)
    assert runs[0].ok and runs[2].ok and runs[0].metrics == runs[2].metrics == {"error": 0.5, "params": 3}
    assert "3 jobs in" in written.text and "2 ok, 1 missing" in written.text
    assert written.csv.read_text().count("\n") == 4 and written.figure.read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in sweep.rglob("*") if p.name.endswith(".tmp")]
    assert read_multirun(sweep).runs[1].status == "missing"


# -- bounded caches -------------------------------------------------------------------------------


def test_padding_at_fifty_resolutions_keeps_the_table_cache_bounded(monkeypatch) -> None:
    from geoconv.grids import cubemap, equirect, healpix
    from geoconv.grids._gather import TABLES

    TABLES.clear()
    first = equirect.pad(torch.arange(8.0).view(1, 1, 2, 4), 1)
    sizes = []
    for size in range(1, 51):
        equirect.pad(torch.randn(1, 1, size + 1, 2 * size + 2), 1 + size % 2)
        cubemap.pad(torch.randn(1, 1, 6, size, size), 1)
        if size & (size - 1) == 0:
            healpix.pad(torch.randn(1, 1, 12, size, size), 1)
        sizes.append((len(TABLES), TABLES.nbytes))
        assert len(TABLES) <= TABLES.maxsize and TABLES.nbytes <= TABLES.max_bytes
    assert len(TABLES) == TABLES.maxsize  # it filled up and then evicted: bounded, not grown
    # An evicted table is rebuilt, the same as before.
    assert torch.equal(equirect.pad(torch.arange(8.0).view(1, 1, 2, 4), 1), first)

    # The byte bound holds too: with a small one, the cache stays under it whatever is padded.
    TABLES.clear()
    monkeypatch.setattr(TABLES, "max_bytes", 200_000)
    for size in range(8, 58):
        cubemap.pad(torch.randn(1, 1, 6, size, size), 2)
        assert TABLES.nbytes <= 200_000 or len(TABLES) == 1
    TABLES.clear()


def _geoconv_modules() -> list[Any]:
    modules = []
    for info in pkgutil.walk_packages(geoconv.__path__, "geoconv."):
        if info.name.endswith("__main__"):
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except ImportError:  # an optional dependency is missing: nothing of it can be cached
            continue
    return modules


def test_every_functools_cache_in_geoconv_is_bounded() -> None:
    caches = {}
    for module in _geoconv_modules():
        for name, value in vars(module).items():
            targets = [(name, value)]
            if inspect.isclass(value) and value.__module__ == module.__name__:
                targets += [(f"{name}.{k}", getattr(v, "__func__", v)) for k, v in vars(value).items()]
            for label, obj in targets:
                if isinstance(obj, functools._lru_cache_wrapper) and obj.__module__ == module.__name__:
                    caches[f"{module.__name__}.{label}"] = obj.cache_info().maxsize
    assert caches, "no functools caches found: the scan is broken"
    assert {name: size for name, size in caches.items() if size is None} == {}
