"""taskq's pytest plugin (registered as the `pytest11` entry point `taskq`): fixtures for tests
of code that uses taskq.

    def test_signup(taskq_isolate, taskq_drain):
        app = taskq_isolate(myapp.tasks.app)     # a fresh memory:// broker until the test ends
        job = myapp.tasks.send_email.delay("ada@example.com")
        taskq_drain(app, advance=3600)            # runs it, retries and delays included
        assert job.result(timeout=1) is None
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskq import testing
from taskq.app import TaskQ


@pytest.fixture
def taskq_isolate() -> Iterator[Callable[[TaskQ], TaskQ]]:
    """isolate(app): the app uses a fresh memory:// broker until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(testing.isolated(app))


@pytest.fixture
def taskq_eager() -> Iterator[Callable[[TaskQ], TaskQ]]:
    """eager(app): until the test ends, .delay() runs the job before it returns."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(testing.eager(app))


@pytest.fixture
def taskq_drain() -> Callable[..., int]:
    """taskq.testing.drain: run the app's jobs until none is left (advance= moves the clock)."""
    return testing.drain


@pytest.fixture
def taskq_job_context() -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """taskq.testing.job_context: current_job() works in tasks called inline within it."""
    return testing.job_context
