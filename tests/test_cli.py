"""The ``geoconv`` console script: the registry table, one op's detail, errors and exit codes.

Every check runs over whatever ops are registered, so each new op is held to it for free.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

import geoconv
from geoconv.cli import config_descriptions, main
from geoconv.experiment.table import render_table
from geoconv.ops.registry import OpSpec, get_op, list_ops

WIDE = "1000"  # a terminal wide enough that no cell wraps


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", WIDE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def table_rows(out: str) -> dict[str, str]:
    """Map each op name to its (unwrapped) row in a ``geoconv ops`` table."""
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "GRIDS", "PARAMETERS", "DESCRIPTION"]
    assert set(lines[1]) <= {"-", " "}
    return {line.split()[0]: line for line in lines[2:] if line and not line[0].isspace()}


def parameter_text(spec: OpSpec) -> list[str]:
    """What the table must show for each parameter: ``name=default`` (or the bare name if required)."""
    return [p.name if p.required else f"{p.name}={p.default!r}" for p in spec.parameters()]


def test_table_lists_every_op_with_grids_parameters_defaults_and_summary(
    capsys: pytest.CaptureFixture[str], wide: None
) -> None:
    status, out, err = run(capsys, "ops")
    assert (status, err) == (0, "")
    rows = table_rows(out)
    assert sorted(rows) == geoconv.list_ops()
    for name, row in rows.items():
        spec = get_op(name)
        assert ", ".join(spec.grids) in row
        assert spec.summary in row
        for text in parameter_text(spec):
            assert text in row, f"{name}: {text!r} missing from {row!r}"
        position = [row.index(text) for text in parameter_text(spec)]
        assert position == sorted(position), f"{name}: parameters out of schema order"


def test_narrow_terminal_wraps_cells_without_losing_words(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, geoconv_own_entries
) -> None:
    # geoconv's own ops fit 80 columns; a plugin's long names need not (they are never split).
    with geoconv_own_entries():
        monkeypatch.setenv("COLUMNS", WIDE)
        wide_out = run(capsys, "ops")[1]
        monkeypatch.setenv("COLUMNS", "80")
        status, narrow_out, _ = run(capsys, "ops")
    assert status == 0
    lines = narrow_out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(line == line.rstrip() for line in lines)

    def words(text: str) -> list[str]:
        return sorted(word for line in text.splitlines() if set(line) - {"-", " "} for word in line.split())

    assert words(narrow_out) == words(wide_out)
    # Continuation lines keep the columns: they start with blanks under NAME.
    name_width = len(lines[1].split()[0])
    for line in lines[2:]:
        if line and line[0].isspace():
            assert line[:name_width].strip() == ""


def test_pattern_and_grid_filter_the_table(capsys: pytest.CaptureFixture[str], wide: None) -> None:
    status, out, _ = run(capsys, "ops", "*conv*")
    assert status == 0
    assert sorted(table_rows(out)) == list_ops("*conv*")
    status, out, _ = run(capsys, "ops", "--grid", "planar")
    assert status == 0
    assert sorted(table_rows(out)) == list_ops(grid="planar")


def test_a_pattern_matching_nothing_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "ops", "no_such_op_*")
    assert status == 1
    assert out == ""
    assert "no op matches 'no_such_op_*'" in err


@pytest.mark.parametrize("name", list_ops())
def test_detail_view_shows_the_doc_and_every_field(capsys: pytest.CaptureFixture[str], wide: None, name: str) -> None:
    spec = get_op(name)
    status, out, err = run(capsys, "ops", name)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == name
    assert f"grids:    {', '.join(spec.grids)}" in lines
    assert f"source:   {spec.source}" in lines
    assert spec.summary in out
    assert inspect.cleandoc(spec.doc) in out  # the full doc, not only its summary
    assert f"{spec.config.__module__}.{spec.config.__qualname__}" in out
    descriptions = config_descriptions(spec.config)
    if not spec.parameters():
        assert "(no parameters)" in lines
        return
    schema = lines[next(k for k, line in enumerate(lines) if line.startswith("PARAMETER ")) :]
    rows = {line.split()[0]: line for line in schema[2:] if line and not line[0].isspace()}
    assert list(rows) == [p.name for p in spec.parameters()]
    for p in spec.parameters():
        row = rows[p.name]
        assert p.type in row
        assert ("(required)" if p.required else repr(p.default)) in row
        assert descriptions.get(p.name, "") in row


def test_detail_view_reads_numpy_attribute_descriptions(capsys: pytest.CaptureFixture[str], wide: None) -> None:
    status, out, _ = run(capsys, "ops", "conv")
    assert status == 0
    row = next(line for line in out.splitlines() if line.startswith("groups "))
    assert "Both channel counts must be divisible by it." in row
    # "kernel_size, stride, dilation : ..." documents three fields at once.
    for field in ("kernel_size", "stride", "dilation"):
        row = next(line for line in out.splitlines() if line.startswith(field + " "))
        assert "As in ``torch.nn.Conv2d``." in row


def test_unknown_op_exits_2_with_suggestions_and_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "ops", "cnov")
    assert status == 2
    assert out == ""
    assert err.startswith("geoconv: error: unknown op: 'cnov'")
    assert "did you mean 'conv'" in err
    assert "Traceback" not in err


def test_unknown_or_unsupported_grid_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "ops", "--grid", "healpx")
    assert status == 2
    assert "unknown grid: 'healpx'" in err and "'healpix'" in err
    unsupported = [g for g in ("planar", "equirect", "cubemap", "healpix") if g not in get_op("conv").grids]
    if unsupported:
        status, _, err = run(capsys, "ops", "conv", "--grid", unsupported[0])
        assert status == 2
        assert f"does not support grid {unsupported[0]!r}" in err


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--version")
    assert (status, out.strip()) == (0, f"geoconv {geoconv.__version__}")
    status, out, err = run(capsys)
    assert status == 2
    assert "usage: geoconv" in err
    status, _, err = run(capsys, "opz")
    assert status == 2
    assert "invalid choice: 'opz'" in err


def test_python_dash_m_geoconv_lists_every_op_and_fails_cleanly() -> None:
    env = {**os.environ, "COLUMNS": WIDE}
    listing = subprocess.run(
        [sys.executable, "-m", "geoconv", "ops"], capture_output=True, text=True, env=env, timeout=300
    )
    assert listing.returncode == 0, listing.stderr
    rows = table_rows(listing.stdout)
    assert sorted(rows) == geoconv.list_ops()
    for name, row in rows.items():
        for text in parameter_text(get_op(name)):
            assert text in row
    unknown = subprocess.run(
        [sys.executable, "-m", "geoconv", "ops", "max_pol"], capture_output=True, text=True, env=env, timeout=300
    )
    assert unknown.returncode == 2
    assert unknown.stdout == ""
    assert "unknown op: 'max_pol'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_console_script_is_declared() -> None:
    scripts = metadata.entry_points(group="console_scripts", name="geoconv")
    if not scripts:
        pytest.skip("geoconv is not installed with its console script")
    assert {ep.value for ep in scripts} == {"geoconv.cli:main"}


def test_render_table_aligns_and_wraps() -> None:
    text = render_table(
        ["A", "LONG HEADER", "C"],
        [["x", "one two three four five six", "end"], ["yyyy", "short", ""]],
        width=24,
    )
    lines = text.splitlines()
    # 34 characters of content squeezed into 24: the widest column gives way, down to 13.
    assert lines[0] == "A     LONG HEADER    C"
    assert lines[1] == "----  -------------  ---"
    assert lines[2:] == ["x     one two three  end", "      four five six", "", "yyyy  short"]
    assert render_table(["A", "B"], [["1", "2"]], width=80) == "A  B\n-  -\n1  2"
    with pytest.raises(ValueError, match="every row of the table needs 2 cells"):
        render_table(["A", "B"], [["1"]])


def test_render_table_never_splits_words() -> None:
    text = render_table(["NAME", "VALUE"], [["op", "a_very_long_unbreakable_token short"]], width=10)
    assert "a_very_long_unbreakable_token" in text


def test_config_descriptions_parses_numpy_sections() -> None:
    @dataclass
    class Base:
        """Base config.

        Attributes
        ----------
        a, b : int
            Shared text
            over two lines.
        c : str
            Base c.

        Notes
        -----
        d : not a field
            Ignored, not in an Attributes section.
        """

        a: int = 1
        b: int = 2
        c: str = "x"

    @dataclass
    class Child(Base):
        """Child config.

        Parameters
        ----------
        c : str
            Child c wins.
        e
            No type given.
        """

        e: float = 0.0

    assert config_descriptions(Child) == {
        "a": "Shared text over two lines.",
        "b": "Shared text over two lines.",
        "c": "Child c wins.",
        "e": "No type given.",
    }

    @dataclass
    class Undocumented:
        x: int = 0

    assert config_descriptions(Undocumented) == {}


# -- geoconv run / report -------------------------------------------------------------------------


def test_geoconv_run_works_from_any_directory(tmp_path: Path) -> None:
    # The configs ship inside the package: no conf/ beside the working directory is needed.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "geoconv", "run", "experiment=shift_invariance", "grid.size=16", "hydra.run.dir=out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert payload["status"] == "ok" and payload["config"]["job"]["name"] == "shift"
    assert payload["config"]["grid"]["size"] == 16
    # metrics.json lists the figures the job drew, and they are there.
    assert payload["figures"] and all((tmp_path / "out" / name).is_file() for name in payload["figures"])
    assert (tmp_path / "out" / "run.log").is_file()
    assert not (tmp_path / "conf").exists()


def test_geoconv_run_fails_with_status_1_and_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geoconv", "run", "experiment=shift_invariance", "op.params.kernel_size=three"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "kernel_size" in result.stderr and "Traceback" not in result.stderr


def test_geoconv_report_of_a_missing_directory_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "geoconv: error: multirun directory" in capsys.readouterr().err
