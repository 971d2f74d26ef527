"""Shared oracle and case counters for the fuzz suite.

Every fuzz case ends in one of two outcomes: ``ok`` (an output that passed the test's
checks) or ``GeoconvError`` (whose message must name the offending parameter or shape);
config composition adds a third, Hydra's own ``composition error``.
Anything else propagates and fails the test. The counts per test are printed at the end
of the run, and each outcome is also a :func:`hypothesis.event`, so
``--hypothesis-show-statistics`` reports them per test.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import event

from geoconv.errors import GeoconvError

OK = "ok"
ERROR = "GeoconvError"


class Fuzz:
    """Runs one fuzz case against the oracle and counts its outcome."""

    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    def record(self, label: str, outcome: str) -> None:
        self.counts[label][outcome] += 1
        event(outcome)

    def attempt(self, label: str, words: Iterable[str], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn``; on :class:`GeoconvError` check that its message names one of ``words``.

        Returns the result, or :data:`ERROR` (and records the outcome) if it raised a
        ``GeoconvError``. Any other exception propagates: that is a bug.
        """
        try:
            return fn(*args, **kwargs)
        except GeoconvError as err:
            message = str(err).lower()
            words = [w for w in words if w]
            assert any(str(w).lower() in message for w in words), (
                f"GeoconvError names none of {sorted(set(map(str, words)))}: {err}"
            )
            self.record(label, ERROR)
            return ERROR


_FUZZ = Fuzz()


@pytest.fixture(scope="session")
def fuzz() -> Fuzz:
    return _FUZZ


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FUZZ.counts:
        return
    terminalreporter.section("geoconv fuzz cases")
    total: collections.Counter[str] = collections.Counter()
    for label in sorted(_FUZZ.counts):
        counts = _FUZZ.counts[label]
        total.update(counts)
        terminalreporter.write_line(f"{label:40s} {_line(counts)}")
    terminalreporter.write_line(f"{'total':40s} {_line(total)}")


def _line(counts: collections.Counter[str]) -> str:
    others = "".join(f", {n:6d} {k}" for k, n in sorted(counts.items()) if k not in (OK, ERROR))
    return f"{sum(counts.values()):6d} cases: {counts[OK]:6d} ok, {counts[ERROR]:6d} GeoconvError{others}"
