"""The README shows what the code does: its ops table is the CLI's output, its commands are CI's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from geoconv.cli import main
from geoconv.ops.registry import list_ops, register_op, unregister_op

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block_after(marker: str) -> str:
    match = re.search(re.escape(marker) + r"\n```[a-z]*\n(.*?)\n```", README, flags=re.S)
    assert match, f"no code block after {marker} in README.md"
    return match.group(1)


OPTIONAL_OPS = ("disco_conv",)  # registered only where an optional extra is installed


def test_ops_table_is_the_cli_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    removed = [unregister_op(name) for name in OPTIONAL_OPS if name in list_ops()]
    try:
        assert main(["ops"]) == 0
    finally:
        for spec in removed:
            register_op(
                spec.name,
                grids=spec.grids,
                config=spec.config,
                doc=spec.doc,
                same_channels=spec.same_channels,
                apply=spec.apply,
            )(spec.factory)
    printed = capsys.readouterr().out.rstrip("\n")
    assert _block_after("<!-- ops-table -->") == printed, "regenerate the README table with: COLUMNS=100 geoconv ops"


def test_ci_runs_the_readme_test_command() -> None:
    command = _block_after("<!-- test-command -->")
    assert "pytest" in command and "pip install" in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci, ".ci/run must read the test command from the README"


@pytest.mark.parametrize("index", range(len(re.findall(r"```python\n", README))))
def test_python_examples_run(index: int) -> None:
    """Every ``python`` block of the README runs as written."""
    block = re.findall(r"```python\n(.*?)\n```", README, flags=re.S)[index]
    namespace: dict[str, object] = {}
    before = set(list_ops())
    try:
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    finally:
        for name in set(list_ops()) - before:  # the README registers an example op
            unregister_op(name)
