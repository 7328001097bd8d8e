"""Django's tasks framework from where it lives: `django.tasks` (Django >= 6.0), else the
django-tasks backport (`django_tasks`). The rest of taskq.contrib.django imports it from here.

The two spell one exception differently (`InvalidTask` in Django, `InvalidTaskError` in the
backport); here it is `InvalidTask` either way.
"""

from __future__ import annotations

try:  # Django >= 6.0 ships the framework
    from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    HOME = "django.tasks"
except ImportError:
    try:
        from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as exc:
        raise ImportError(
            f"taskq.contrib.django needs Django >= 6.0 or the django-tasks backport ({exc}): "
            "pip install 'taskq-redis[django]'") from None

    HOME = "django_tasks"

__all__ = ["HOME", "BaseTaskBackend", "InvalidTask", "Task", "TaskContext", "TaskError", "TaskResult",
           "TaskResultDoesNotExist", "TaskResultStatus", "normalize_json", "task_backends", "task_enqueued",
           "task_finished", "task_started"]
