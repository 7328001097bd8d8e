"""Backoff is pure: exponential growth, a cap, bounded jitter."""

from __future__ import annotations

import pytest

from taskq import Backoff


def test_grows_exponentially_and_caps() -> None:
    b = Backoff(base=1, factor=2, max=10, jitter=False)
    assert [b.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_between_half_and_full_delay() -> None:
    b = Backoff(base=4, factor=3, max=1000, jitter=True)
    assert b.delay(2, rng=lambda: 0.0) == 6.0
    assert b.delay(2, rng=lambda: 1.0) == 12.0
    assert b.delay(2, rng=lambda: 0.5) == 9.0


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert Backoff(base=1, factor=10, max=60, jitter=False).delay(10_000) == 60


@pytest.mark.parametrize("kwargs", [{"base": -1}, {"factor": 0.5}, {"max": -2}])
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff needs"):
        Backoff(**kwargs)
