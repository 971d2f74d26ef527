"""The README shows what the code does: its ops table is the CLI's output, its commands are CI's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from geoconv.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block_after(marker: str) -> str:
    match = re.search(re.escape(marker) + r"\n```[a-z]*\n(.*?)\n```", README, flags=re.S)
    assert match, f"no code block after {marker} in README.md"
    return match.group(1)


def test_ops_table_is_the_cli_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["ops"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    assert _block_after("<!-- ops-table -->") == printed, "regenerate the README table with: COLUMNS=100 geoconv ops"


def test_ci_runs_the_readme_test_command() -> None:
    command = _block_after("<!-- test-command -->")
    assert "pytest" in command and "pip install" in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci, ".ci/run must read the test command from the README"
