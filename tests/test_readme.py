"""The README shows what the code does: its ops table is the CLI's output, its commands are CI's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from geoconv.cli import main
from geoconv.grids.registry import GRIDS
from geoconv.ops.registry import OPS, list_ops, unregister_op

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block_after(marker: str) -> str:
    match = re.search(re.escape(marker) + r"\n```[a-z]*\n(.*?)\n```", README, flags=re.S)
    assert match, f"no code block after {marker} in README.md"
    return match.group(1)


OPTIONAL_OPS = ("disco_conv",)  # registered only where an optional extra is installed


def test_ops_table_is_the_cli_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, geoconv_own_entries
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with geoconv_own_entries(OPTIONAL_OPS):
        assert main(["ops"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    assert _block_after("<!-- ops-table -->") == printed, "regenerate the README table with: COLUMNS=100 geoconv ops"


def test_hiding_plugins_puts_every_entry_back_as_it_was(geoconv_own_entries) -> None:
    before = {
        (registry.kind, name): (registry.source(name), registry.get(name))
        for registry in (OPS, GRIDS)
        for name in registry.names()
    }
    with geoconv_own_entries(OPTIONAL_OPS):
        assert all(OPS.source(name) == "geoconv" and name not in OPTIONAL_OPS for name in OPS.names())
        assert all(GRIDS.source(name) == "geoconv" for name in GRIDS.names())
    after = {
        (registry.kind, name): (registry.source(name), registry.get(name))
        for registry in (OPS, GRIDS)
        for name in registry.names()
    }
    assert after.keys() == before.keys()
    assert all(after[key][0] == before[key][0] and after[key][1] is before[key][1] for key in before)


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
