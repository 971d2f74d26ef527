"""Statistics over seeds: grouping, mean ± std against numpy, Welch's test against scipy.

The synthetic sweeps have Hydra's layout (numbered job directories, ``.hydra/overrides.yaml``,
``metrics.json``), with the seeds of one configuration interleaved with other jobs, as Hydra's
basic sweeper orders them.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from hydra import compose, initialize_config_dir

from geoconv.errors import GeoconvError
from geoconv.experiment.config import register_configs, validate
from geoconv.experiment.report import SEEDS_LEGEND, markdown_table, render_markdown, write_report
from geoconv.experiment.stats import (
    group_by_seed,
    higher_is_better,
    mean_std,
    seed_grouped,
    student_t_sf2,
    welch_test,
)
from geoconv.experiment.sweep import read_multirun

CONF = Path(__file__).resolve().parents[2] / "conf"


def make_sweep(root: Path, jobs: list[tuple[list[str], dict | None]]) -> Path:
    """Write one job directory per ``(overrides, payload)``; ``None``: a killed job (no metrics.json)."""
    for job, (overrides, payload) in enumerate(jobs):
        (root / str(job) / ".hydra").mkdir(parents=True)
        (root / str(job) / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        if payload is not None:
            (root / str(job) / "metrics.json").write_text(json.dumps(payload))
    return root


def ok(**metrics: float) -> dict:
    return {"metrics": metrics, "config": {}, "status": "ok"}


def markdown_table_of(sweep: Path) -> str:
    return render_markdown(read_multirun(sweep))


def split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_rows(text: str) -> dict[str, list[str]]:
    """The rows of the first Markdown table in ``text``, keyed by their first cell."""
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("|"))
    header = split_row(lines[start])
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = split_row(line)
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Variants a, b, c with 4, 3 and 1 seeds (b's seed 2 failed, c's seed 0 only), interleaved."""
    rng = np.random.default_rng(12)
    acc = {"a": rng.normal(0.8, 0.02, 4), "b": rng.normal(0.7, 0.05, 3), "c": rng.normal(0.5, 0.1, 1)}
    jobs = []
    for seed in range(4):
        for variant in "abc":
            if seed < len(acc[variant]):
                jobs.append(([f"variant={variant}", f"seed={seed}"], ok(acc=float(acc[variant][seed]), ms=1.0 + seed)))
    jobs.append((["variant=b", "seed=3"], {"metrics": {"acc": 0.99}, "status": "failed", "error": "boom"}))
    jobs.append((["variant=a", "seed=9"], None))  # killed
    return make_sweep(tmp_path / "sweep", jobs), acc


def test_grouped_mean_and_std_match_numpy(seeded: tuple[Path, dict[str, np.ndarray]]) -> None:
    sweep, acc = seeded
    written = write_report(sweep)
    assert written.seeds_csv == sweep / "report_seeds.csv"
    with written.seeds_csv.open(newline="") as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"a", "b", "c"}
    for variant, values in acc.items():
        row = rows[variant]
        assert float(row["acc/mean"]) == pytest.approx(np.mean(values), rel=1e-14)
        assert int(row["acc/n"]) == len(values)
        if len(values) > 1:
            assert float(row["acc/std"]) == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        else:
            assert row["acc/std"] == ""
    # The failed job's 0.99 and the killed job count in the status, not in the statistics.
    assert rows["b"]["status"] == "3 ok, 1 failed" and rows["a"]["status"] == "4 ok, 1 missing"
    assert rows["a"]["jobs"] == "0,3,5,7,9" and rows["a"]["seeds"] == "0 1 2 3 9"
    # The Markdown cells: %.3g of numpy's mean and std, and n; one value alone.
    table = table_rows(written.text)
    by_variant = {row["variant"]: row for row in table.values()}
    a, b = acc["a"], acc["b"]
    assert by_variant["a"]["acc"].startswith(f"{np.mean(a):.3g} ± {np.std(a, ddof=1):.3g} (4)")
    assert by_variant["b"]["acc"].startswith(f"{np.mean(b):.3g} ± {np.std(b, ddof=1):.3g} (3)")
    assert by_variant["c"]["acc"].split()[0] == f"{acc['c'][0]:.3g}" and "±" not in by_variant["c"]["acc"]
    assert by_variant["a"]["seeds"] == "5" and by_variant["b"]["status"] == "3 ok, 1 failed"
    # report.csv still has one row per job.
    with written.csv.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 10


def test_markers_follow_scipys_welch_test_against_the_best_group(
    seeded: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    # A clear case first: y is below x beyond the noise (scipy: p = 0.0169), z is not (p = 0.71).
    values = {"x": [0.80, 0.82, 0.84], "y": [0.60, 0.65, 0.70], "z": [0.79, 0.83, 0.81]}
    assert scipy.stats.ttest_ind(values["y"], values["x"], equal_var=False).pvalue < 0.05
    assert scipy.stats.ttest_ind(values["z"], values["x"], equal_var=False).pvalue > 0.05
    jobs = [([f"variant={v}", f"seed={k}"], ok(acc=xs[k])) for v, xs in values.items() for k in range(3)]
    clear = table_rows(markdown_table_of(make_sweep(tmp_path / "clear", jobs)))
    assert [row["acc"] for row in clear.values()] == ["0.82 ± 0.02 (3) ^", "0.65 ± 0.05 (3) *", "0.81 ± 0.02 (3)"]
    sweep, acc = seeded
    text = render_markdown(read_multirun(sweep))
    by_variant = {row["variant"]: row for row in table_rows(text).values()}
    # acc: higher is better, so a is best; b is tested against it; c (n = 1) cannot be tested.
    assert by_variant["a"]["acc"].endswith(" ^")
    p = scipy.stats.ttest_ind(acc["b"], acc["a"], equal_var=False).pvalue
    assert by_variant["b"]["acc"].endswith(" *") == (p < 0.05)
    assert not by_variant["c"]["acc"].endswith(("*", "^"))
    # ms (1 + seed): lower is better; c's single 1.0 is best (a: 2.5, b: 2), and a best with
    # one value cannot be tested against, so nothing is marked as beyond the noise.
    assert by_variant["c"]["ms"] == "1 ^"
    assert not by_variant["a"]["ms"].endswith(("*", "^")) and not by_variant["b"]["ms"].endswith(("*", "^"))
    assert SEEDS_LEGEND in text and "## Every job" in text
    with (write_report(sweep).seeds_csv).open(newline="") as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    assert float(rows["b"]["acc/p_vs_best"]) == pytest.approx(p, rel=1e-9)
    assert rows["a"]["acc/p_vs_best"] == "" and rows["c"]["acc/p_vs_best"] == ""


@pytest.mark.parametrize("sizes", [(2, 2), (3, 5), (6, 4), (10, 3)])
def test_welch_t_df_and_p_match_scipy(sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    for _ in range(50):
        a = rng.normal(0.0, rng.uniform(0.1, 2.0), sizes[0])
        b = rng.normal(rng.uniform(-2, 2), rng.uniform(0.1, 2.0), sizes[1])
        ours = welch_test(list(a), list(b))
        ref = scipy.stats.ttest_ind(a, b, equal_var=False)
        assert ours is not None
        assert ours.t == pytest.approx(ref.statistic, rel=1e-12)
        assert ours.df == pytest.approx(ref.df, rel=1e-12)
        assert ours.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_students_t_tail_against_closed_forms_and_the_table() -> None:
    for t in (0.1, 1.0, 3.0, 40.0):
        # df = 1 is Cauchy: P(|T| >= t) = 1 - 2 atan(t) / pi; df = 2: 1 - t / sqrt(2 + t^2).
        assert student_t_sf2(t, 1.0) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-12)
        assert student_t_sf2(t, 2.0) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)
    # Two-sided 5 % critical values from any t table (3 decimals, so p to about 1e-4).
    for df, critical in ((1, 12.706), (3, 3.182), (10, 2.228), (30, 2.042)):
        assert student_t_sf2(critical, df) == pytest.approx(0.05, abs=1e-4)


def test_welch_needs_two_values_and_some_spread() -> None:
    assert welch_test([1.0], [1.0, 2.0]) is None
    assert welch_test([1.0, 1.0], [2.0, 2.0]) is None
    assert mean_std([3.0]) == (3.0, pytest.approx(math.nan, nan_ok=True), 1)
    assert higher_is_better("test/acc_nr") and higher_is_better("train/samples_per_s")
    assert not any(map(higher_is_better, ("train/loss", "equivariance/max_err", "params", "fwd_ms")))
    # The group names an error even when the last part does not (these were marked best when largest).
    assert not any(map(higher_is_better, ("equivariance/max", "symmetry/roll_1", "erf/pole_offset_deg")))


def test_grouping_ignores_seed_and_nothing_else(tmp_path: Path) -> None:
    jobs = [
        (["variant=a", "trainer.lr=0.1", "seed=0"], ok(acc=0.5)),
        (["variant=a", "trainer.lr=0.2", "seed=0"], ok(acc=0.6)),
        (["variant=a", "trainer.lr=0.1", "seed=1"], ok(acc=0.7)),
        (["variant=a", "seed=2", "trainer.lr=0.2"], ok(acc=0.8)),  # order of overrides does not matter
        (["variant=a", "trainer.lr=0.1"], ok(acc=0.9)),  # no seed: the config's default seed
    ]
    sweep = make_sweep(tmp_path / "sweep", jobs)
    (sweep / "5" / ".hydra").mkdir(parents=True)
    (sweep / "5" / ".hydra" / "overrides.yaml").write_text("{not: a list}\n")  # unreadable: its own group
    groups = group_by_seed(read_multirun(sweep))
    assert [group.jobs for group in groups] == ["0,2,4", "1,3", "5"]
    assert groups[0].choices == {"variant": "a", "trainer.lr": "0.1"} and groups[0].seeds == ("0", "1", "")
    assert groups[0].values("acc") == [0.5, 0.7, 0.9]


def test_a_sweep_without_repeated_seeds_renders_one_row_per_job(tmp_path: Path) -> None:
    # seed constant: no grouping, as before.
    constant = make_sweep(
        tmp_path / "constant", [(["variant=a", "seed=0"], ok(acc=0.5)), (["variant=b", "seed=0"], ok(acc=0.6))]
    )
    # seed varies but no configuration repeats: still one row per job.
    single = make_sweep(
        tmp_path / "single", [(["variant=a", "seed=0"], ok(acc=0.5)), (["variant=b", "seed=1"], ok(acc=0.6))]
    )
    for sweep in (constant, single):
        report = read_multirun(sweep)
        assert seed_grouped(report) is None
        written = write_report(sweep)
        assert written.seeds_csv is None and not (sweep / "report_seeds.csv").exists()
        text = written.markdown.read_text()
        assert "## Every job" not in text and SEEDS_LEGEND not in text
        assert markdown_table(report) in text and written.text.endswith(markdown_table(report))
        assert list(table_rows(text)) == ["0", "1"]


@pytest.mark.parametrize("experiment", ["ablation_train", "spherical_mnist"])
def test_the_training_experiments_sweep_three_seeds_and_an_empty_seed_fails_validation(experiment: str) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        empty = compose(config_name="config", overrides=[f"experiment={experiment}", "seed="])
    seeds = [s.strip() for s in str(cfg.hydra.sweeper.params.seed).split(",")]
    assert len(set(seeds)) >= 3 and all(s.isdigit() for s in seeds)
    # `hydra.sweeper.params.seed=` (an empty list) gives jobs with seed '': each fails validation
    # with one line naming the parameter, before any data are built or any training.
    with pytest.raises(GeoconvError, match=r"seed must be an integer >= 0, got '' \(str\)"):
        validate(empty)


def test_a_report_without_seed_groups_removes_a_stale_seed_table(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    seeded = make_sweep(tmp_path / "seeded", [(["variant=a", f"seed={s}"], ok(acc=0.5 + s / 10)) for s in range(3)])
    assert write_report(seeded, out).seeds_csv == out / "report_seeds.csv"
    plain = make_sweep(tmp_path / "plain", [(["variant=a"], ok(acc=0.5)), (["variant=b"], ok(acc=0.6))])
    written = write_report(plain, out)
    # The seed table of the first sweep would describe runs this report is not about.
    assert written.seeds_csv is None and not (out / "report_seeds.csv").exists()


def test_an_experiment_run_in_parts_is_one_report_with_seeds_grouped_across_sweeps(tmp_path: Path) -> None:
    """Seed 0 in one sweep, seeds 1 and 2 in a later one: one row per variant over all three."""
    rng = np.random.default_rng(5)
    acc = {variant: rng.normal(0.7, 0.05, 3) for variant in "ab"}
    first = make_sweep(tmp_path / "seed0", [([f"variant={v}", "seed=0"], ok(acc=float(acc[v][0]))) for v in "ab"])
    later_jobs = [([f"variant={v}", f"seed={s}"], ok(acc=float(acc[v][s]))) for v in "ab" for s in (1, 2)]
    later = make_sweep(tmp_path / "seeds12", later_jobs)
    out = tmp_path / "combined"
    written = write_report([first, later], out)
    with written.seeds_csv.open(newline="") as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    for variant, values in acc.items():
        assert float(rows[variant]["acc/mean"]) == pytest.approx(np.mean(values), rel=1e-14)
        assert float(rows[variant]["acc/std"]) == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        assert rows[variant]["acc/n"] == "3" and rows[variant]["seeds"] == "0 1 2"
    assert rows["a"]["jobs"] == "seed0/0,seeds12/0,seeds12/1" and rows["b"]["jobs"] == "seed0/1,seeds12/2,seeds12/3"
    # Each job keeps its own row in report.csv, named by sweep; the sweeps' own reports are untouched.
    with written.csv.open(newline="") as handle:
        assert [row["job"] for row in csv.DictReader(handle)][:3] == ["seed0/0", "seed0/1", "seeds12/0"]
    assert not (first / "report.md").exists() and not (later / "report.md").exists()
    markdown = written.markdown.read_text()
    assert markdown.startswith("# Report: seed0 + seeds12\n") and f"6 jobs in `{first}`, `{later}`: 6 ok." in markdown


def test_several_sweeps_need_an_output_directory_and_distinct_paths(tmp_path: Path) -> None:
    one = make_sweep(tmp_path / "x" / "sweep", [(["variant=a", "seed=0"], ok(acc=0.5))])
    two = make_sweep(tmp_path / "y" / "sweep", [(["variant=a", "seed=1"], ok(acc=0.6))])
    with pytest.raises(GeoconvError, match=r"several multirun directories .* need an output directory \(--out DIR\)"):
        write_report([one, two])
    assert not (one / "report.md").exists()
    with pytest.raises(GeoconvError, match=r"each may be given once, got .*x/sweep more than once"):
        read_multirun(one, two, one)
    with pytest.raises(GeoconvError, match=r"each may be given once, got .*x/sweep more than once"):
        read_multirun(one, one.parent / "." / ".." / "x" / "sweep")  # one directory, spelled twice
    # Two sweeps with the same directory name are told apart by their paths.
    assert [run.name for run in read_multirun(one, two).runs] == [f"{one}/0", f"{two}/0"]


def test_a_job_re_run_with_overwrite_or_resumed_is_still_a_repeat_of_its_configuration(tmp_path: Path) -> None:
    jobs = [
        (["variant=a", "seed=0", "overwrite=true"], ok(acc=0.5)),
        (["variant=a", "seed=1"], ok(acc=0.6)),
        (["variant=a", "seed=2", "ckpt_path=last"], ok(acc=0.8)),
        (["variant=a", "seed=3", "trainer.max_epochs=9"], ok(acc=0.9)),  # another configuration
    ]
    groups = seed_grouped(read_multirun(make_sweep(tmp_path / "sweep", jobs)))
    assert [group.jobs for group in groups] == ["0,1,2", "3"]
    assert groups[0].choices == {"variant": "a"}
    assert groups[0].stats("acc") == pytest.approx((np.mean([0.5, 0.6, 0.8]), np.std([0.5, 0.6, 0.8], ddof=1), 3))
    table = write_report(tmp_path / "sweep").text.split("\n\n", 1)[1]
    header = split_row(table.splitlines()[0])
    assert "overwrite" not in header and "ckpt_path" not in header and "trainer.max_epochs" in header
