"""The shop's Django tasks, run by taskq (tests/test_django.py)."""

import os
import time
from pathlib import Path

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # the django-tasks backport
    from django_tasks import task


class OrderError(Exception):
    pass


@task
def add(x: int, y: int) -> int:
    return x + y


@task(queue_name="emails")
async def add_later(x: int, y: int) -> int:
    return x + y


@task
def record(label: str) -> str:
    """Appends its label to $SHOP_LOG: the order jobs ran in."""
    with open(os.environ["SHOP_LOG"], "a") as log:
        log.write(label + "\n")
    return label


@task
def wait_for(path: str) -> str:
    """Runs until the file `path` exists (the test opens this gate once it saw RUNNING)."""
    deadline = time.monotonic() + 60  # a hang guard
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "opened"


@task
def explode(order_id: int) -> None:
    raise OrderError(f"order {order_id} is broken")


@task(takes_context=True)
def whoami(context, note: str) -> dict:
    """Fails its first attempt, so the second sees attempt 2."""
    if context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": context.attempt, "id": context.task_result.id, "note": note}
