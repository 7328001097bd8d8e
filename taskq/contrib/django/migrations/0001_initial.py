"""The outbox table, taskq_outbox (taskq/contrib/django/models.py): the columns `taskq outbox
init` creates, with database defaults for kind and created_at (writers outside Django leave them out)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations, models
from django.db.models.functions import Now
from django.utils import timezone


def notify_trigger(apps: Any, schema_editor: Any) -> None:
    """On PostgreSQL, the trigger `taskq outbox init` makes: a commit wakes relays at once (LISTEN)."""
    if schema_editor.connection.vendor == "postgresql":
        from taskq.outbox_sql import POSTGRES_DDL

        for statement in POSTGRES_DDL[1:]:
            schema_editor.execute(statement)


class Migration(migrations.Migration):  # type: ignore[misc]
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations: ClassVar[list[Any]] = [
        migrations.CreateModel(
            name="OutboxRow",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("namespace", models.TextField()),
                ("queue", models.TextField()),
                ("job_id", models.TextField()),
                ("kind", models.TextField(db_default="job", default="job")),
                ("payload", models.BinaryField()),
                ("created_at", models.DateTimeField(db_default=Now(), default=timezone.now)),
            ],
            options={"db_table": "taskq_outbox"},
        ),
        migrations.RunPython(notify_trigger, migrations.RunPython.noop),
    ]
