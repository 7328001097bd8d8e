"""Exception filters on a task: retry_on / dont_retry_on (a failure not to retry is dead at once)."""

from __future__ import annotations

import pytest

import taskq
from taskq.testing import drain

QUICK = taskq.Backoff(base=0.01, jitter=False)


def test_retry_on_retries_only_the_listed_failures(app: taskq.TaskQ) -> None:
    runs: dict[str, int] = {}

    @app.task(retries=3, backoff=QUICK, retry_on=(OSError,))
    def call(kind: str) -> str:
        runs[kind] = runs.get(kind, 0) + 1
        if runs[kind] == 1:
            raise (OSError if kind == "io" else ValueError)(f"{kind} failed")
        return kind

    io, bad = call.delay("io"), call.delay("value")
    drain(app)
    assert io.result(timeout=5) == "io" and runs["io"] == 2
    assert bad.status() == "dead" and runs["value"] == 1
    record = app.broker.job("default", bad.id)
    assert record is not None and record.reason is not None
    assert record.reason.startswith("not_retried: ValueError: value failed")


def test_dont_retry_on_dead_letters_at_once_and_retries_the_rest(app: taskq.TaskQ) -> None:
    runs: list[str] = []

    @app.task(retries=2, backoff=QUICK, dont_retry_on=KeyError)
    def call(kind: str) -> None:
        runs.append(kind)
        raise KeyError(kind) if kind == "key" else RuntimeError(kind)

    key, other = call.delay("key"), call.delay("other")
    drain(app)
    assert key.status() == "dead" and other.status() == "dead"
    assert runs.count("key") == 1 and runs.count("other") == 3  # 1 + 2 retries
    assert (app.broker.job("default", other.id).reason or "").startswith("retries_exhausted")  # type: ignore[union-attr]


def test_taskq_retry_is_always_a_retry(app: taskq.TaskQ) -> None:
    runs: list[int] = []

    @app.task(retries=1, backoff=QUICK, retry_on=(OSError,), dont_retry_on=(Exception,))
    def call() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise taskq.Retry(delay=0.01)
        return "done"

    job = call.delay()
    drain(app)
    assert job.result(timeout=5) == "done" and len(runs) == 2


@pytest.mark.parametrize("bad", [{"retry_on": "OSError"}, {"dont_retry_on": (ValueError, 3)}, {"retry_on": (int,)}])
def test_filters_must_be_exception_classes(app: taskq.TaskQ, bad: dict[str, object]) -> None:
    with pytest.raises(taskq.ConfigError, match="must be a tuple of exception classes"):
        app.task(**bad)(lambda: None)  # type: ignore[call-overload]


def test_per_call_retries_timeout_and_backoff_override_the_tasks(app: taskq.TaskQ) -> None:
    runs: list[str] = []

    @app.task(retries=5, backoff=taskq.Backoff(base=60))  # the task's own: a minute between tries
    def flaky(label: str) -> str:
        runs.append(label)
        raise RuntimeError(label)

    once = flaky.options(retries=1, backoff=QUICK).delay("once")
    never = flaky.options(retries=0).delay("never")
    drain(app, timeout=30)
    assert runs.count("once") == 2 and runs.count("never") == 1  # quick backoff, fewer retries
    assert once.status() == "dead" and never.status() == "dead"
    bulk = flaky.options(retries=0).map(["a", "b"])
    drain(app, timeout=30)
    assert [j.status() for j in bulk] == ["dead", "dead"] and runs.count("a") == 1

    @app.task(timeout=0.05, retries=0)
    async def nap(seconds: float) -> float:
        import asyncio

        await asyncio.sleep(seconds)
        return seconds

    strict, relaxed, unlimited = nap.delay(0.2), nap.options(timeout=5).delay(0.2), nap.options(timeout=None).delay(0.2)
    drain(app, timeout=30)
    assert strict.status() == "dead"
    assert "TimeLimitExceeded" in (app.broker.job("default", strict.id).reason or "")  # type: ignore[union-attr]
    assert relaxed.result(timeout=5) == 0.2 and unlimited.result(timeout=5) == 0.2


def test_rate_limited_gives_the_job_back_without_spending_an_attempt(app: taskq.TaskQ) -> None:
    attempts: list[int] = []

    @app.task(retries=0)  # no retries at all: only RateLimited may bring it back
    def call_api() -> str:
        attempts.append(taskq.current_job().attempt)
        if len(attempts) < 3:
            raise taskq.RateLimited(retry_after=0.01)  # the API said 429
        return "ok"

    job = call_api.delay()
    drain(app, timeout=30)
    assert job.result(timeout=5) == "ok" and attempts == [1, 1, 1]
    with pytest.raises(ValueError, match="retry_after"):
        taskq.RateLimited(-1)
