"""The multirun report: every job a row with its exact values, failures marked, files whole.

The fake multirun below has Hydra's layout (numbered job directories, ``.hydra/overrides.yaml``,
``metrics.json``) and four jobs: two that finished, one that raised, one that was killed.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from geoconv.errors import GeoconvError
from geoconv.experiment.report import (
    MISSING_REASON,
    atomic_write,
    markdown_table,
    plot_summary,
    read_multirun,
    render_markdown,
    write_report,
)
from geoconv.experiment.summary import headline_metrics

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ERROR = "GeoconvError: op 'gated_conv' does not support grid 'healpix' | see `geoconv ops`"
# job -> (overrides, metrics.json payload or None when the job was killed)
JOBS: dict[int, tuple[list[str], dict | None]] = {
    0: (
        ["op=conv", "grid=planar", "grid.padding_mode=zeros", "seed=0"],
        {
            "metrics": {"equivariance/max_err": 1.5e-07, "erf/std": 2.449489742783178, "params": 76},
            "config": {"op": {"name": "conv"}},
            "status": "ok",
        },
    ),
    1: (
        ["op=conv", "grid=healpix", "grid.padding_mode=healpix", "seed=0"],
        {
            "metrics": {"equivariance/max_err": 0.0123, "erf/std": 3.0, "params": 76, "floor/err": 0.000456789},
            "config": {"op": {"name": "conv"}},
            "status": "ok",
        },
    ),
    2: (
        ["op=gated_conv", "grid=healpix", "grid.padding_mode=zeros", "seed=0"],
        {"metrics": {}, "config": {}, "status": "failed", "error": ERROR},
    ),
    3: (["op=gated_conv", "grid=planar", "grid.padding_mode=zeros", "seed=0"], None),
}
VARYING = ("op", "grid", "grid.padding_mode")
METRICS = ("equivariance/max_err", "erf/std", "params", "floor/err")


def make_job(root: Path, job: int, overrides: list[str], payload: dict | str | None) -> Path:
    job_dir = root / str(job)
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
    (job_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    if isinstance(payload, dict):
        (job_dir / "metrics.json").write_text(json.dumps(payload, indent=2))
    elif isinstance(payload, str):
        (job_dir / "metrics.json").write_text(payload)
    return job_dir


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    root = tmp_path / "multirun" / "2026-11-25" / "10-00-00"
    root.mkdir(parents=True)
    for job, (overrides, payload) in JOBS.items():
        make_job(root, job, overrides, payload)
    (root / "0" / "figures").mkdir()
    (root / "0" / "figures" / "erf.png").write_bytes(PNG_SIGNATURE)
    (root / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    return root


def split_row(line: str) -> list[str]:
    """The cells of one Markdown table line (``\\|`` inside a cell is not a separator)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]


def parse_table(text: str) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and the raw table lines of the (first) Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return split_row(lines[0]), [split_row(line) for line in lines[2:]], lines


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------------------------
# Reading


def test_every_job_is_a_run_with_its_exact_values(multirun: Path) -> None:
    report = read_multirun(multirun)
    assert [run.job for run in report.runs] == [0, 1, 2, 3]
    assert [run.status for run in report.runs] == ["ok", "ok", "failed", "missing"]
    assert report.varying == VARYING
    assert report.constant == {"seed": "0"}
    assert report.metric_names == METRICS
    for run in report.runs:
        overrides, payload = JOBS[run.job]
        assert run.choices == dict(item.split("=", 1) for item in overrides)
        assert run.metrics == (payload["metrics"] if payload else {})
    assert report.runs[2].error == ERROR
    assert report.runs[3].error == MISSING_REASON
    assert report.runs[0].figures == (multirun / "0" / "figures" / "erf.png",)
    assert report.notes == ()


def test_a_gap_in_job_numbers_is_a_missing_row(multirun: Path) -> None:
    make_job(multirun, 5, ["op=pool", "grid=planar", "grid.padding_mode=zeros", "seed=0"], JOBS[0][1])
    report = read_multirun(multirun)
    assert [run.job for run in report.runs] == [0, 1, 2, 3, 4, 5]
    assert (report.runs[4].status, report.runs[4].error) == ("missing", "no job directory")
    # The job that never started sets no keys, so it does not make `seed` vary.
    assert report.constant == {"seed": "0"}


def test_unreadable_metrics_json_is_a_failed_row_not_a_crash(multirun: Path) -> None:
    (multirun / "1" / "metrics.json").write_text('{"metrics": {"erf/std": 3.0')  # cut off mid-write
    run = read_multirun(multirun).runs[1]
    assert run.status == "failed"
    assert run.error.startswith("unreadable metrics.json: ")
    assert run.metrics == {}
    (multirun / "1" / "metrics.json").write_text("[1, 2]")
    assert read_multirun(multirun).runs[1].error == "unreadable metrics.json: expected a JSON object, got list"


def test_metrics_json_without_status_counts_as_ok_and_nested_metrics_flatten(multirun: Path) -> None:
    payload = {"metrics": {"equivariance": {"max_err": 0.5}, "params": 10}, "config": {}}
    (multirun / "0" / "metrics.json").write_text(json.dumps(payload))
    run = read_multirun(multirun).runs[0]
    assert (run.status, run.metrics) == ("ok", {"equivariance/max_err": 0.5, "params": 10})


def test_unreadable_overrides_blank_the_choices_and_add_a_note(multirun: Path) -> None:
    (multirun / "3" / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")
    report = read_multirun(multirun)
    assert report.runs[3].choices == {}
    assert report.varying == VARYING  # the other three jobs still decide what varies
    assert len(report.notes) == 1
    assert re.fullmatch(r"job 3: unreadable \.hydra/overrides\.yaml \(\w+Error\); choices blank", report.notes[0])
    assert "Note: job 3: unreadable .hydra/overrides.yaml" in render_markdown(report)


# --------------------------------------------------------------------------------------------
# Markdown


def test_markdown_table_has_every_row_with_exact_formatted_values(multirun: Path) -> None:
    header, rows, lines = parse_table(markdown_table(read_multirun(multirun)))
    assert header == ["job", *VARYING, *METRICS, "status"]
    # A job that finished without a metric says n/a; one that did not finish leaves it blank.
    assert rows == [
        ["0", "conv", "planar", "zeros", "1.5e-07", "2.45", "76", "n/a", "ok"],
        ["1", "conv", "healpix", "healpix", "0.0123", "3", "76", "0.000457", "ok"],
        ["2", "gated_conv", "healpix", "zeros", "", "", "", "", "failed: " + ERROR.replace("|", "\\|")],
        ["3", "gated_conv", "planar", "zeros", "", "", "", "", "missing (killed or out of memory?)"],
    ]
    assert len({len(line) for line in lines}) == 1, "columns are not aligned"
    # Numbers right-aligned (`---:`), text left-aligned.
    rule = split_row(lines[1])
    assert all(re.fullmatch(r"-+:?", cell) for cell in rule)
    assert [cell.endswith(":") for cell in rule] == [True, False, False, False, True, True, True, True, False]


def test_a_long_multiline_error_is_one_short_cell_but_whole_in_the_csv(multirun: Path) -> None:
    error = "RuntimeError: CUDA out of memory.\n" + "Tried to allocate 2.00 GiB; " * 10
    payload = {"metrics": {}, "config": {}, "status": "failed", "error": error}
    (multirun / "2" / "metrics.json").write_text(json.dumps(payload))
    table = markdown_table(read_multirun(multirun))
    cell = parse_table(table)[1][2][-1]
    assert cell.startswith("failed: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB;")
    assert cell.endswith("...") and len(cell) == 120
    assert len(table.splitlines()) == 6
    with write_report(multirun).csv.open(newline="") as fh:
        assert list(csv.DictReader(fh))[2]["error"] == error


def test_markdown_metrics_patterns_select_columns(multirun: Path) -> None:
    header, rows, _ = parse_table(markdown_table(read_multirun(multirun), ["equivariance/*", "params"]))
    assert header == ["job", *VARYING, "equivariance/max_err", "params", "status"]
    assert [row[4:6] for row in rows] == [["1.5e-07", "76"], ["0.0123", "76"], ["", ""], ["", ""]]


def test_a_pattern_matching_no_metric_is_an_error_with_suggestions(multirun: Path) -> None:
    with pytest.raises(GeoconvError, match=r"'param' matches no metric; did you mean 'params'\?"):
        markdown_table(read_multirun(multirun), ["param"])


def test_report_md_lists_constant_keys_counts_and_links_job_figures(multirun: Path) -> None:
    text = render_markdown(read_multirun(multirun))
    assert "4 jobs in " in text and ": 2 ok, 1 failed, 1 missing." in text
    assert "Same in every job: `seed=0`." in text
    assert "![summary of the headline metrics](summary.png)" in text
    assert "- 0: op=conv, grid=planar, padding_mode=zeros: [figures/erf.png](0/figures/erf.png)" in text
    header, _, _ = parse_table(text)
    assert "seed" not in header


# --------------------------------------------------------------------------------------------
# Files


def test_write_report_writes_three_whole_files_and_no_temporaries(multirun: Path) -> None:
    before = {p.name for p in multirun.iterdir()}
    written = write_report(multirun)
    assert {p.name for p in multirun.iterdir()} == before | {"report.md", "report.csv", "summary.png"}
    assert not list(multirun.rglob("*.tmp"))
    assert written.markdown.read_text() == render_markdown(written.report)
    assert markdown_table(written.report) in written.text

    # CSV: every choice (constant ones too) and every metric, numbers exactly as written.
    with written.csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["job", *VARYING, "seed", *METRICS, "status", "error"]
    assert [int(row["job"]) for row in rows] == [0, 1, 2, 3]
    for row in rows:
        overrides, payload = JOBS[int(row["job"])]
        assert {key: row[key] for key in (*VARYING, "seed")} == dict(item.split("=", 1) for item in overrides)
        metrics = payload["metrics"] if payload else {}
        for name in METRICS:
            if name in metrics:
                assert float(row[name]) == metrics[name]
            else:
                assert row[name] == ""
    assert [(row["status"], row["error"]) for row in rows] == [
        ("ok", ""),
        ("ok", ""),
        ("failed", ERROR),
        ("missing", MISSING_REASON),
    ]
    assert rows[0]["params"] == "76"  # an integer stays an integer

    width, height = png_size(written.figure)
    assert width > 0 and height > 0


def test_csv_keeps_every_metric_when_the_table_selects_some(multirun: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "ablation"
    written = write_report(multirun, out, metrics=["erf/*"])
    assert written.markdown.parent == out and not (multirun / "report.md").exists()
    assert parse_table(written.markdown.read_text())[0] == ["job", *VARYING, "erf/std", "status"]
    with written.csv.open(newline="") as fh:
        assert next(csv.reader(fh)) == ["job", *VARYING, "seed", *METRICS, "status", "error"]
    # Job figures are linked relative to where report.md is.
    assert "[figures/erf.png](../../multirun/2026-11-25/10-00-00/0/figures/erf.png)" in written.markdown.read_text()


def test_a_bad_pattern_writes_nothing(multirun: Path) -> None:
    with pytest.raises(GeoconvError, match="matches no metric"):
        write_report(multirun, headline=["nonexistent/*"])
    assert not (multirun / "report.md").exists()
    assert not (multirun / "summary.png").exists()


def test_summary_figure_is_a_png_even_when_no_job_has_metrics(multirun: Path, tmp_path: Path) -> None:
    for job in (0, 1):
        (multirun / str(job) / "metrics.json").unlink()
    path = plot_summary(read_multirun(multirun), tmp_path / "summary.png")
    assert png_size(path) > (0, 0)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old report\n")

    def crash(fh: object) -> None:
        fh.write(b"half of a new rep")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
    atomic_write(target, "new report\n")
    assert target.read_text() == "new report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


# --------------------------------------------------------------------------------------------
# Bad input


def test_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(GeoconvError, match="does not exist"):
        read_multirun(tmp_path / "nope")


def test_a_directory_without_job_directories_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(GeoconvError, match=r"no job directories in .*one numbered subdirectory per job \(0/, 1/"):
        read_multirun(tmp_path)


def test_a_single_run_directory_or_a_date_directory_gets_a_hint(multirun: Path) -> None:
    with pytest.raises(GeoconvError, match="looks like a single run's directory"):
        read_multirun(multirun / "0")
    with pytest.raises(GeoconvError, match="these subdirectories look like multirun directories: 10-00-00"):
        read_multirun(multirun.parent)


# --------------------------------------------------------------------------------------------
# Command line


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "experiments/report.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prints_the_table_and_writes_the_files(multirun: Path) -> None:
    result = run_cli(str(multirun))
    assert result.returncode == 0, result.stderr
    header, rows, lines = parse_table(result.stdout)
    assert header == ["job", *VARYING, *METRICS, "status"]
    assert [row[:4] for row in rows] == [
        ["0", "conv", "planar", "zeros"],
        ["1", "conv", "healpix", "healpix"],
        ["2", "gated_conv", "healpix", "zeros"],
        ["3", "gated_conv", "planar", "zeros"],
    ]
    assert rows[0][4:] == ["1.5e-07", "2.45", "76", "n/a", "ok"]
    assert rows[2][-1].startswith("failed: GeoconvError: op 'gated_conv' does not support grid 'healpix'")
    assert rows[3][-1] == "missing (killed or out of memory?)"
    assert "\n".join(lines) == markdown_table(read_multirun(multirun))
    assert "Same in every job: `seed=0`." in result.stdout
    assert f"Wrote {multirun / 'report.md'}" in result.stdout
    assert png_size(multirun / "summary.png") > (0, 0)


def test_cli_metrics_and_out(multirun: Path, tmp_path: Path) -> None:
    result = run_cli(str(multirun), "--metrics", "params", "erf/*", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    header, _, _ = parse_table(result.stdout)
    assert header == ["job", *VARYING, "erf/std", "params", "status"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.csv", "report.md", "summary.png"]


def test_cli_bad_directory_exits_2_with_a_message(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "report.py: error: multirun directory" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reads_several_sweeps_into_out_and_refuses_them_without_it(multirun: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    shutil.copytree(multirun, again)
    refused = run_cli(str(multirun), str(again))
    assert refused.returncode == 2 and "need an output directory (--out DIR)" in refused.stderr
    assert not (multirun / "report.md").exists() and not (again / "report.md").exists()
    result = run_cli(str(multirun), str(again), "--out", str(tmp_path / "both"))
    assert result.returncode == 0, result.stderr
    _, rows, _ = parse_table(result.stdout)
    assert [row[0] for row in rows] == [f"{multirun.name}/{job}" for job in JOBS] + [f"again/{job}" for job in JOBS]
    assert [row[1:] for row in rows[: len(JOBS)]] == [row[1:] for row in rows[len(JOBS) :]]


# --------------------------------------------------------------------------------------------
# The experiment's own columns (issue 11 b)


def configure(multirun: Path, report_metrics: list[str]) -> None:
    """Give every job's saved config the experiment's ``report_metrics``, as Hydra saves it."""
    for job in JOBS:
        saved = multirun / str(job) / ".hydra" / "config.yaml"
        saved.write_text(f"seed: 0\nreport_metrics: {json.dumps(report_metrics)}\n")


def test_the_report_uses_the_experiments_columns_and_shows_absent_ones_as_n_a(multirun: Path) -> None:
    configure(multirun, ["erf/*", "rotation/excess", "params"])
    report = read_multirun(multirun)
    assert report.report_metrics == ("erf/*", "rotation/excess", "params")
    header, rows, _ = parse_table(markdown_table(report))
    # Matches in the order the jobs wrote them, then the configured column no job produced.
    assert header == ["job", *VARYING, "erf/std", "params", "rotation/excess", "status"]
    assert [row[4:7] for row in rows] == [["2.45", "76", "n/a"], ["3", "76", "n/a"], ["", "", ""], ["", "", ""]]
    # The figure draws what some job has a number for; an all-n/a column would be an empty panel.
    assert headline_metrics(report) == ("erf/std", "params")


def test_the_cli_report_of_a_sweep_keeps_its_columns_and_metrics_still_chooses(multirun: Path) -> None:
    configure(multirun, ["equivariance/*", "rotation/excess"])
    written = write_report(multirun)  # what the sweep's own callback writes
    result = run_cli(str(multirun))  # rewritten later from the command line: the same report
    assert result.returncode == 0, result.stderr
    assert (multirun / "report.md").read_text() == written.markdown.read_text()
    assert parse_table(result.stdout)[0] == ["job", *VARYING, "equivariance/max_err", "rotation/excess", "status"]
    chosen = run_cli(str(multirun), "--metrics", "params")
    assert parse_table(chosen.stdout)[0] == ["job", *VARYING, "params", "status"]
    # A pattern typed on the command line that matches nothing is still a typo to report.
    typo = run_cli(str(multirun), "--metrics", "rotation/excess")
    assert typo.returncode == 2 and "'rotation/excess' matches no metric" in typo.stderr


def test_the_config_in_metrics_json_serves_when_the_hydra_config_is_gone(multirun: Path) -> None:
    for job in (0, 1):
        (multirun / str(job) / ".hydra" / "config.yaml").unlink()
        payload = json.loads((multirun / str(job) / "metrics.json").read_text())
        payload["config"]["report_metrics"] = ["params"]
        (multirun / str(job) / "metrics.json").write_text(json.dumps(payload))
    assert read_multirun(multirun).report_metrics == ("params",)
