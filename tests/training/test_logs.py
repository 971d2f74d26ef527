"""What a training run prints: every line once, no progress bar in a log, the test metrics at the end.

Issue 11 (i): under ``experiments/run.py`` Lightning's INFO lines came twice (its own console
handler and Hydra's root handler), progress bars flooded non-interactive logs, and the test
metrics were never printed.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from geoconv.training.engine import TRAINER_DEFAULTS
from geoconv.training.logs import metrics_block, progress_bar_enabled

ROOT = Path(__file__).resolve().parents[2]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_only_on_a_terminal_unless_forced() -> None:
    assert TRAINER_DEFAULTS["progress_bar"] == "auto"
    assert progress_bar_enabled("auto", _Terminal()) is True
    assert progress_bar_enabled("auto", io.StringIO()) is False  # a pipe or a log file
    assert progress_bar_enabled(True, io.StringIO()) is True
    assert progress_bar_enabled(False, _Terminal()) is False


def test_the_metrics_block_shows_every_test_metric_once_without_its_prefix() -> None:
    block = metrics_block({"test/acc": 0.8125, "test/acc_nr": 0.75, "params": 12, "test/n": 3}, "digits on planar 8")
    assert block.splitlines() == [
        "test metrics, digits on planar 8:",
        "  acc     0.8125",
        "  acc_nr  0.75",
        "  n       3",
    ]


def test_a_training_run_prints_each_line_once_no_bar_and_its_test_metrics(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/run.py",
            "experiment=translated_digits",
            f"hydra.run.dir={out}",
            "grid.size=8",
            "data.limit=64",
            "data.test_limit=32",
            "data.cache_dir=null",
            "trainer.max_epochs=1",
            "device=cpu",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    # Lightning's lines and geoconv's progress lines: on the console, once each.
    assert console.count("GPU available") == 1, console
    assert console.count("train job: op=conv grid=planar") == 1, console
    assert console.count("training on translated_digits") == 1, console
    # stdout is a pipe here: no progress bar (Lightning's bars say "Epoch 0" and draw with box characters).
    assert "Epoch 0" not in console and "━" not in console and "it/s" not in console
    # The last lines: the test metrics, the very numbers metrics.json holds.
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    match = re.search(r"test metrics, translated_digits on planar 8, 1 epoch\(s\):\n((?:.*\n)+?)\S", console + "\n.")
    assert match, console
    shown = dict(line.split() for line in match.group(1).splitlines() if line.startswith("  "))
    expected = {name.removeprefix("test/"): value for name, value in metrics.items() if name.startswith("test/")}
    assert set(shown) == set(expected) >= {"acc", "loss", "consistency"}
    for name, value in expected.items():
        assert float(shown[name]) == pytest.approx(value, rel=1e-3, abs=1e-12)
    # The job's log file has the same lines as the console.
    assert (out / "run.log").read_text().count("test metrics, translated_digits") == 1
