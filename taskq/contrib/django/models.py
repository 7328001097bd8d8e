"""The outbox table `taskq_outbox` (taskq[outbox]: `app.outbox(connection)` writes a row per job
inside the caller's transaction; `taskq relay` moves committed rows to Redis). Its migration
creates the same columns as `taskq outbox init`; the relay's NOTIFY trigger is not part of it."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class OutboxRow(models.Model):  # type: ignore[misc]
    """One job (kind 'job') or one workflow (kind 'flow') waiting to be relayed to Redis."""

    id = models.BigAutoField(primary_key=True)
    namespace = models.TextField()
    queue = models.TextField()
    job_id = models.TextField()
    kind = models.TextField(default="job", db_default="job")
    payload = models.BinaryField()
    #: the database's clock when a writer gives none (the outbox's writers leave it to the database)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now())

    class Meta:
        db_table = "taskq_outbox"
