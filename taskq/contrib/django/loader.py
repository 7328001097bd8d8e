"""The app `taskq worker taskq.contrib.django` runs: Django set up from $DJANGO_SETTINGS_MODULE,
the installed apps' `tasks` modules imported (their Django tasks register as they are defined),
and the taskq app of one task backend."""

from __future__ import annotations

import os

from taskq.contrib.django.backend import DjangoTaskQ, TaskqBackend, discover_tasks
from taskq.errors import ConfigError

#: names the task backend a worker runs when $TASKQ_DJANGO_BACKEND does not
DEFAULT_ALIAS = "default"


def worker_app(alias: str | None = None) -> DjangoTaskQ:
    """The taskq app of the task backend `alias` (default $TASKQ_DJANGO_BACKEND, else "default"),
    with Django set up and every installed app's tasks registered."""
    import django
    from django.apps import apps
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from taskq.contrib.django.compat import task_backends

    alias = alias or os.environ.get("TASKQ_DJANGO_BACKEND") or DEFAULT_ALIAS
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ConfigError("taskq.contrib.django: set $DJANGO_SETTINGS_MODULE to the project's settings module")
    try:
        if not apps.ready:
            django.setup()
        discover_tasks()
        backend = task_backends[alias]
    except (ImportError, ImproperlyConfigured) as exc:
        raise ConfigError(f"taskq.contrib.django: {exc}") from None
    if not isinstance(backend, TaskqBackend):
        raise ConfigError(f"taskq.contrib.django: TASKS[{alias!r}] is {type(backend).__module__}."
                          f"{type(backend).__qualname__}, not taskq.contrib.django.TaskqBackend")
    return backend.app
