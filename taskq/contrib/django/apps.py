"""The Django app "taskq.contrib.django" (label `taskq`): the `taskq` management command and
the migration of the outbox table."""

from __future__ import annotations

from django.apps import AppConfig


class TaskqConfig(AppConfig):  # type: ignore[misc]
    name = "taskq.contrib.django"
    label = "taskq"
    verbose_name = "taskq"
    default_auto_field = "django.db.models.BigAutoField"
