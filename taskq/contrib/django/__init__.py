"""taskq as a backend of Django's tasks framework (`django.tasks`, Django >= 6.0; or the
django-tasks backport), the extra `taskq-redis[django]`.

    TASKS = {"default": {"BACKEND": "taskq.contrib.django.TaskqBackend", "QUEUES": ["default"],
                         "OPTIONS": {"url": "redis://localhost:6379/0", "namespace": "myproject"}}}

Run the jobs with `taskq worker taskq.contrib.django` ($DJANGO_SETTINGS_MODULE set), or
`python manage.py taskq worker` with "taskq.contrib.django" in INSTALLED_APPS (which also
brings the migration of the outbox table, taskq_outbox).
"""

from __future__ import annotations

from typing import Any

from taskq.contrib.django.backend import TaskqBackend

__all__ = ["TaskqBackend"]


def __getattr__(name: str) -> Any:
    """`app`: the taskq app a worker runs, built on demand (PEP 562), because a web process
    imports this module for TaskqBackend while Django is still setting up."""
    if name == "app":
        from taskq.contrib.django.loader import worker_app

        return worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
